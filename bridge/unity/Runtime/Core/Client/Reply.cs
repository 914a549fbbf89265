using System.Collections.Generic;
using StreamVideo.Protocol;

namespace StreamVideo.Client
{
    /// <summary>A decoded control reply: its header map and the raw buffers after it.</summary>
    public sealed class Reply
    {
        public Reply(Dictionary<string, object> header, List<byte[]> buffers)
        {
            Header = header;
            Buffers = buffers;
            object id;
            header.TryGetValue("id", out id);
            Id = id as long?;
            object ok;
            Ok = header.TryGetValue("ok", out ok) && ok is bool && (bool)ok;
            if (!Ok)
            {
                object error;
                var map = header.TryGetValue("error", out error) ? error as Dictionary<string, object> : null;
                ErrorCode = map != null && map.ContainsKey("code") ? map["code"] as string : null;
                ErrorMessage = map != null && map.ContainsKey("message") ? map["message"] as string : null;
                ErrorCode = ErrorCode ?? BridgeException.BadReply;
                ErrorMessage = ErrorMessage ?? "error reply without {code, message}";
            }
        }

        public Dictionary<string, object> Header { get; private set; }
        public List<byte[]> Buffers { get; private set; }
        /// <summary>The echoed request id; null when the server could not read the request's id.</summary>
        public long? Id { get; private set; }
        public bool Ok { get; private set; }
        public string ErrorCode { get; private set; }
        public string ErrorMessage { get; private set; }
    }
}
