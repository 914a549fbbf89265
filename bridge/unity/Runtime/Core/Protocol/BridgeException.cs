using System;

namespace StreamVideo.Protocol
{
    /// <summary>
    /// An error with a protocol code (PROTOCOL.md section 3.1): the server's <c>{code, message}</c>, or one of
    /// the client-side codes <c>timeout</c> (no reply in time) and <c>bad_reply</c> (a reply that does not
    /// follow the protocol).
    /// </summary>
    public sealed class BridgeException : Exception
    {
        public const string Timeout = "timeout";
        public const string BadReply = "bad_reply";

        public BridgeException(string code, string detail) : base(code + ": " + detail)
        {
            Code = code;
            Detail = detail;
        }

        /// <summary>The error code, e.g. <c>bad_action</c>, <c>unknown_session</c>, <c>timeout</c>.</summary>
        public string Code { get; private set; }

        /// <summary>The human-readable message that came with the code.</summary>
        public string Detail { get; private set; }
    }
}
