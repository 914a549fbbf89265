using System.Collections.Generic;

namespace StreamVideo.Protocol
{
    /// <summary>The <c>hello</c> reply: what the server offers and its limits.</summary>
    public sealed class ServerInfo
    {
        public string Version;
        public string Server;
        /// <summary>Models the server offers; the first is the default for <c>open</c>.</summary>
        public string[] Models;
        public string[] Encodings;
        /// <summary>Stream endpoint as the server bound it (a wildcard host is replaced by the control host).</summary>
        public string Pub;
        public int HeartbeatMs;
        public int MaxSessions;
        public int IdleTimeoutMs;
        public long MaxMessageBytes;
        public long MaxArrayBytes;
        public int MaxPending;
        public int MaxPromptChars;
        public int StreamHwm;

        public static ServerInfo FromReply(IDictionary<string, object> reply, string controlEndpoint)
        {
            var limits = Fields.Map(reply, "limits");
            return new ServerInfo
            {
                Version = Fields.String(reply, "version"),
                Server = Fields.String(reply, "server"),
                Models = Fields.Strings(reply, "models"),
                Encodings = Fields.Strings(reply, "encodings"),
                Pub = Endpoints.ReplaceWildcardHost(Fields.String(reply, "pub"), controlEndpoint),
                HeartbeatMs = Fields.Int(reply, "heartbeat_ms"),
                MaxSessions = Fields.Int(limits, "max_sessions"),
                IdleTimeoutMs = Fields.Int(limits, "idle_timeout_ms"),
                MaxMessageBytes = Fields.Long(limits, "max_message_bytes"),
                MaxArrayBytes = Fields.Long(limits, "max_array_bytes"),
                MaxPending = Fields.Int(limits, "max_pending"),
                MaxPromptChars = Fields.Int(limits, "max_prompt_chars"),
                StreamHwm = Fields.Int(limits, "stream_hwm"),
            };
        }
    }
}
