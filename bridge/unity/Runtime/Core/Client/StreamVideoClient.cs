using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Text;
using System.Threading;
using StreamVideo.MessagePack;
using StreamVideo.Protocol;
using StreamVideo.Transport;

namespace StreamVideo.Client
{
    /// <summary>
    /// A connection to a streamvideo server (PROTOCOL.md): handshake, request/reply matched by id with bounded
    /// timeouts and same-id resends, reconnects, and the stream subscription. Blocking and single-threaded like
    /// its transport: create, use and dispose it on one thread (in Unity, a worker thread: see
    /// <see cref="StreamVideoWorker"/>).
    /// </summary>
    public sealed class StreamVideoClient : IDisposable
    {
        public const string ProtocolVersion = "1.2";
        const int PollSliceMs = 50;

        readonly TransportFactory _factory;
        readonly ClientOptions _options;
        readonly HashSet<string> _topics = new HashSet<string>();
        ITransport _transport;
        long _nextId = 1;
        bool _disposed;

        public StreamVideoClient(TransportFactory factory, ClientOptions options)
        {
            _factory = factory;
            _options = options;
            RequestTimeoutMs = options.RequestTimeoutMs;
            Attempts = options.Attempts;
        }

        /// <summary>The hello reply of the current connection; null before <see cref="Connect"/>.</summary>
        public ServerInfo Server { get; private set; }

        public int RequestTimeoutMs { get; set; }
        public int Attempts { get; set; }

        /// <summary>Cancels waits for replies (they throw <see cref="OperationCanceledException"/>); for shutting a worker down quickly.</summary>
        public CancellationToken Cancellation { get; set; }

        /// <summary>
        /// Opens fresh sockets (closing any old ones) and says hello; calling it again is a reconnect. Sessions
        /// live on the server, not on the connection, so they survive it; stream subscriptions are renewed.
        /// </summary>
        public ServerInfo Connect()
        {
            CheckNotDisposed();
            if (_transport != null) _transport.Dispose();
            _transport = null;
            _transport = _factory(_options.ControlEndpoint, _options.Curve);
            Server = Hello();
            foreach (var topic in _topics) _transport.Subscribe(Server.Pub, topic);
            return Server;
        }

        /// <summary>Sends <paramref name="op"/> and returns its success reply; an error reply throws <see cref="BridgeException"/>.</summary>
        public Reply Request(string op, IDictionary<string, object> fields, IList<byte[]> buffers = null)
        {
            var reply = Exchange(op, fields, buffers, RequestTimeoutMs, Attempts);
            if (!reply.Ok && reply.ErrorCode == "handshake_required" && op != "hello")
            {
                Server = Hello(); // the server sees a new connection (e.g. after a TCP reconnect): greet it again
                reply = Exchange(op, fields, buffers, RequestTimeoutMs, Attempts);
            }
            if (!reply.Ok) throw new BridgeException(reply.ErrorCode, reply.ErrorMessage);
            return reply;
        }

        public StreamVideoSession Open(OpenOptions options)
        {
            var reply = Request("open", (options ?? new OpenOptions()).ToFields());
            try
            {
                return new StreamVideoSession(this, SessionInfo.FromReply(reply.Header));
            }
            catch (BridgeException) when (reply.Header.ContainsKey("session"))
            {
                CloseUnreadable(reply.Header["session"]);
                throw;
            }
        }

        /// <summary>Refreshes the idle timers of <paramref name="sessions"/>; returns those the server does not know.</summary>
        public string[] Ping(IList<string> sessions)
        {
            var reply = Request("ping", new Dictionary<string, object> { { "sessions", new List<object>(sessions) } });
            return Fields.Strings(reply.Header, "unknown");
        }

        /// <summary>Server statistics (sessions, streaming, requests, errors, uptime_s).</summary>
        public Dictionary<string, object> Stats()
        {
            return Fields.Map(Request("stats", new Dictionary<string, object>()).Header, "stats");
        }

        /// <summary>The next chunk published for a subscribed session, or null if none came within <paramref name="timeoutMs"/>;
        /// throws <c>stream_ended</c> when the server ended a subscribed stream.</summary>
        public Chunk ReceiveStreamChunk(int timeoutMs)
        {
            var frames = Transport.ReceiveStream(timeoutMs);
            if (frames == null) return null;
            if (frames.Count < 2) throw new BridgeException(BridgeException.BadReply, "stream message has " + frames.Count + " frame(s), expected [topic, header, buffers...]");
            var header = DecodeHeader(frames[1]);
            if (header.ContainsKey("end"))
            {
                // the server's last message of a stream: stopped, closed, idle_timeout or error (PROTOCOL.md 4, stream)
                var end = Fields.Map(header, "end");
                throw new BridgeException(BridgeException.StreamEnded, Fields.String(end, "reason") + ": " + Fields.String(end, "message"));
            }
            var chunk = Chunk.FromReply(header, frames.GetRange(2, frames.Count - 2));
            chunk.Topic = Encoding.ASCII.GetString(frames[0]);
            return chunk;
        }

        internal void Subscribe(string topic)
        {
            if (_topics.Add(topic)) Transport.Subscribe(Server.Pub, topic);
        }

        internal void Unsubscribe(string topic)
        {
            if (_topics.Remove(topic)) Transport.Unsubscribe(topic);
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            if (_transport != null) _transport.Dispose();
            _transport = null;
        }

        /// <summary>Closes a session whose open reply could not be read, so that it does not hold a server slot until it idles out.</summary>
        void CloseUnreadable(object session)
        {
            try
            {
                Request("close", new Dictionary<string, object> { { "session", session } });
            }
            catch (BridgeException)
            {
                // The open reply's error is the one to report.
            }
        }

        ServerInfo Hello()
        {
            var fields = new Dictionary<string, object> { { "version", ProtocolVersion }, { "client", _options.ClientName } };
            Reply reply;
            if (_options.Curve == null)
            {
                reply = Exchange("hello", fields, null, RequestTimeoutMs, Attempts);
            }
            else
            {
                // A refused CURVE handshake gets no reply, and a transport has no socket monitor to tell it apart
                // (PROTOCOL.md 1.2): an unanswered hello, in bounded time, is that refusal.
                try
                {
                    reply = Exchange("hello", fields, null, _options.HandshakeTimeoutMs, 1);
                }
                catch (BridgeException err) when (err.Code == BridgeException.Timeout)
                {
                    throw new BridgeException(BridgeException.AuthFailed, string.Format(
                        "no reply to hello from {0} within {1} ms over CURVE: the handshake did not complete. Most likely " +
                        "the server key is wrong (it must be that server's server.key: a server that cannot decrypt a " +
                        "client's handshake drops the connection without a word); else this client's public key is not in " +
                        "the server's authorized_clients/, or the server is plaintext, or none is listening there",
                        _options.ControlEndpoint, _options.HandshakeTimeoutMs));
                }
            }
            if (!reply.Ok) throw new BridgeException(reply.ErrorCode, reply.ErrorMessage);
            return ServerInfo.FromReply(reply.Header, _options.ControlEndpoint);
        }

        /// <summary>
        /// One request: send, wait up to <paramref name="timeoutMs"/> for the reply with its id (late replies to earlier
        /// requests are dropped), resend with the same id after a timeout, <paramref name="attempts"/> sends in all.
        /// <c>open</c> is never resent: a second one would open a second session.
        /// </summary>
        Reply Exchange(string op, IDictionary<string, object> fields, IList<byte[]> buffers, int timeoutMs, int attempts)
        {
            long id = _nextId++;
            var header = new Dictionary<string, object>(fields);
            header["id"] = id;
            header["op"] = op;
            var frames = new List<byte[]> { MsgPackWriter.Encode(header) };
            if (buffers != null) frames.AddRange(buffers);

            attempts = op == "open" ? 1 : Math.Max(1, attempts);
            for (int attempt = 0; attempt < attempts; attempt++)
            {
                var clock = Stopwatch.StartNew();
                if (!Transport.SendControl(frames, timeoutMs)) continue;
                while (clock.ElapsedMilliseconds < timeoutMs)
                {
                    Cancellation.ThrowIfCancellationRequested();
                    int wait = (int)Math.Min(PollSliceMs, Math.Max(1, timeoutMs - clock.ElapsedMilliseconds));
                    var message = Transport.ReceiveControl(wait);
                    if (message == null) continue;
                    var reply = new Reply(DecodeHeader(message[0]), message.GetRange(1, message.Count - 1));
                    if (reply.Id == id || (reply.Id == null && !reply.Ok)) return reply;
                }
            }
            throw new BridgeException(BridgeException.Timeout, string.Format(
                "no reply to '{0}' (id {1}) from {2} within {3} ms, {4} attempt(s)",
                op, id, _options.ControlEndpoint, timeoutMs, attempts));
        }

        static Dictionary<string, object> DecodeHeader(byte[] frame)
        {
            object value;
            try
            {
                value = MsgPackReader.Decode(frame);
            }
            catch (FormatException err)
            {
                throw new BridgeException(BridgeException.BadReply, "header is not valid MessagePack: " + err.Message);
            }
            var header = value as Dictionary<string, object>;
            if (header == null) throw new BridgeException(BridgeException.BadReply, "header must be a MessagePack map");
            return header;
        }

        ITransport Transport
        {
            get
            {
                CheckNotDisposed();
                if (_transport == null) throw new InvalidOperationException("call Connect() first");
                return _transport;
            }
        }

        void CheckNotDisposed()
        {
            if (_disposed) throw new ObjectDisposedException("StreamVideoClient");
        }
    }
}
