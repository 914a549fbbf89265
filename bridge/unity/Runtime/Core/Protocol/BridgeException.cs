using System;

namespace StreamVideo.Protocol
{
    /// <summary>
    /// An error with a protocol code (PROTOCOL.md section 3.1): the server's <c>{code, message}</c>, or one of
    /// the client-side codes <c>timeout</c> (no reply in time), <c>auth_failed</c> (the CURVE handshake did not
    /// complete), <c>bad_reply</c> (a reply that does not follow the protocol) and <c>stream_ended</c> (the server
    /// ended a subscribed stream).
    /// </summary>
    public sealed class BridgeException : Exception
    {
        public const string Timeout = "timeout";
        /// <summary>The CURVE handshake did not complete within <c>ClientOptions.HandshakeTimeoutMs</c>; the detail names the likely causes.</summary>
        public const string AuthFailed = "auth_failed";
        public const string BadReply = "bad_reply";
        /// <summary>The last message of a real-time stream; the detail starts with the reason.</summary>
        public const string StreamEnded = "stream_ended";

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
