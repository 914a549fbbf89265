using System.Collections.Generic;

namespace StreamVideo.Protocol
{
    /// <summary>The <c>open</c> reply: a session's id, frame geometry and action space.</summary>
    public sealed class SessionInfo
    {
        /// <summary>32 lowercase hex characters; the session's capability (whoever holds it drives the session): keep it private.</summary>
        public string Id;
        /// <summary>The topic its real-time chunks are published under: lets a subscriber watch, never drive.</summary>
        public string Topic;
        public string Model;
        public int FramesPerChunk;
        public int Height;
        public int Width;
        public double Fps;
        public ActionSpace ActionSpace;
        public string Encoding;
        /// <summary>Words of the prompt the model does not know, so they do not steer it (empty from a 1.1 server).</summary>
        public string[] UnknownWords;

        public static SessionInfo FromReply(IDictionary<string, object> reply)
        {
            return new SessionInfo
            {
                Id = Fields.String(reply, "session"),
                Topic = Fields.String(reply, "topic"),
                Model = Fields.String(reply, "model"),
                FramesPerChunk = Fields.Int(reply, "frames_per_chunk"),
                Height = Fields.Int(reply, "height"),
                Width = Fields.Int(reply, "width"),
                Fps = Fields.Double(reply, "fps"),
                ActionSpace = ActionSpace.FromMap(Fields.Map(reply, "action_space")),
                Encoding = Fields.String(reply, "encoding"),
                UnknownWords = Fields.Has(reply, "unknown_words") ? Fields.Strings(reply, "unknown_words") : new string[0],
            };
        }
    }

    /// <summary>A model's action space: <c>none</c>, <c>discrete</c> (n), <c>multi_discrete</c> (sizes) or <c>continuous</c> (dim).</summary>
    public sealed class ActionSpace
    {
        public string Kind;
        public int N;
        public int[] Sizes;
        public int Dim;
        /// <summary>Human-readable, e.g. <c>Discrete(4)</c>.</summary>
        public string Describe;

        public static ActionSpace FromMap(IDictionary<string, object> map)
        {
            return new ActionSpace
            {
                Kind = Fields.String(map, "kind"),
                N = Fields.Int(map, "n"),
                Sizes = Fields.Ints(map, "sizes"),
                Dim = Fields.Int(map, "dim"),
                Describe = Fields.String(map, "describe"),
            };
        }
    }
}
