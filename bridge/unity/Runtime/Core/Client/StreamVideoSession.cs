using System.Collections.Generic;
using StreamVideo.Protocol;

namespace StreamVideo.Client
{
    /// <summary>
    /// One generator session on the server (PROTOCOL.md section 4): lock-step <see cref="Step"/>, or real-time
    /// streaming driven by <see cref="Act"/>. Used on the thread of its <see cref="StreamVideoClient"/>.
    /// </summary>
    public sealed class StreamVideoSession
    {
        readonly StreamVideoClient _client;

        internal StreamVideoSession(StreamVideoClient client, SessionInfo info)
        {
            _client = client;
            Info = info;
        }

        public SessionInfo Info { get; private set; }
        public string Id { get { return Info.Id; } }

        /// <summary>The words of the session's current prompt the model does not know (from the last open, reset or set_prompt).</summary>
        public string[] UnknownWords { get { return Info.UnknownWords; } }

        /// <summary>
        /// Restarts the session's video as a new episode, optionally under a new prompt and seed; returns the index the
        /// next chunk will have (0).
        /// </summary>
        public long Reset(string prompt = null, long? seed = null)
        {
            var fields = Fields();
            if (prompt != null) fields["prompt"] = prompt;
            if (seed.HasValue) fields["seed"] = seed.Value;
            var reply = _client.Request("reset", fields);
            NoteUnknownWords(reply);
            return Protocol.Fields.Long(reply.Header, "next_index");
        }

        /// <summary>Generates the next chunk under <paramref name="action"/> (null = the model's no-op). Not while streaming.</summary>
        public Chunk Step(ModelAction action)
        {
            var fields = Fields();
            fields["action"] = (action ?? ModelAction.None).Wire;
            var reply = _client.Request("step", fields);
            return Chunk.FromReply(reply.Header, reply.Buffers);
        }

        /// <summary>Changes the prompt from the next chunk on; <paramref name="recache"/> re-encodes the cached window under it.</summary>
        public void SetPrompt(string prompt, bool recache = false)
        {
            var fields = Fields();
            fields["prompt"] = prompt;
            if (recache) fields["recache"] = true;
            NoteUnknownWords(_client.Request("set_prompt", fields));
        }

        /// <summary>
        /// Subscribes to the session's stream topic (<see cref="SessionInfo.Topic"/>), then turns real-time mode on (in that order, so no chunk is missed
        /// by a slow-joining subscriber). Chunks then arrive through <see cref="StreamVideoClient.ReceiveStreamChunk"/>.
        /// </summary>
        /// <param name="fps">Frames per second to generate; null = the model's rate, 0 = as fast as the server can.</param>
        public void StartStream(double? fps = null)
        {
            _client.Subscribe(Info.Topic);
            var fields = Fields();
            fields["on"] = true;
            if (fps.HasValue) fields["fps"] = fps.Value;
            _client.Request("stream", fields);
        }

        public void StopStream()
        {
            var fields = Fields();
            fields["on"] = false;
            _client.Request("stream", fields);
            _client.Unsubscribe(Info.Topic);
        }

        /// <summary>Sets the action a real-time session holds until the next one; returns the index of the last published chunk (-1 if none).</summary>
        public long Act(ModelAction action)
        {
            var fields = Fields();
            fields["action"] = (action ?? ModelAction.None).Wire;
            return Protocol.Fields.Long(_client.Request("act", fields).Header, "index");
        }

        /// <summary>Generator statistics of this session (chunks, frames, nfe, seconds per chunk, fps, streaming).</summary>
        public Dictionary<string, object> Stats()
        {
            return Protocol.Fields.Map(_client.Request("stats", Fields()).Header, "stats");
        }

        /// <summary>Frees the session on the server; its id is unknown from then on.</summary>
        public void Close()
        {
            _client.Unsubscribe(Info.Topic);
            _client.Request("close", Fields());
        }

        Dictionary<string, object> Fields()
        {
            return new Dictionary<string, object> { { "session", Id } };
        }

        void NoteUnknownWords(Reply reply)
        {
            if (Protocol.Fields.Has(reply.Header, "unknown_words")) Info.UnknownWords = Protocol.Fields.Strings(reply.Header, "unknown_words");
        }
    }
}
