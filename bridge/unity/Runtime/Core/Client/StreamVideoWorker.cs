using System;
using System.Diagnostics;
using System.Threading;
using StreamVideo.Protocol;
using StreamVideo.Transport;

namespace StreamVideo.Client
{
    /// <summary>
    /// Drives one real-time session on a background thread, so that a game loop never waits on the network:
    /// it connects, opens a session, streams it into a <see cref="FrameQueue"/>, forwards the latest action
    /// and prompt from any thread, sends heartbeats, and reconnects (reopening the session if the server lost
    /// it) after timeouts. <see cref="Dispose"/> stops it within a bounded time and closes the session.
    /// </summary>
    public sealed class StreamVideoWorker : IDisposable
    {
        const int StreamPollMs = 20;
        const int ShutdownRequestMs = 500;

        readonly TransportFactory _factory;
        readonly ClientOptions _options;
        readonly OpenOptions _open;
        readonly double? _fps;
        readonly FrameQueue _frames;
        readonly CancellationTokenSource _stop = new CancellationTokenSource();
        Thread _thread;
        ModelAction _action = ModelAction.None;
        string _pendingPrompt;
        volatile SessionInfo _session;
        volatile string _status = "not started";
        volatile BridgeException _lastError;
        volatile string _lastPrompt;
        long _chunks;
        long _lastIndex = -1;
        long _reconnects;

        /// <param name="fps">Generation rate; null = the model's frame rate, 0 = as fast as the server can.</param>
        public StreamVideoWorker(TransportFactory factory, ClientOptions options, OpenOptions open, double? fps, FrameQueue frames)
        {
            _factory = factory;
            _options = options;
            _open = open;
            _fps = fps;
            _frames = frames;
            ReconnectDelayMs = 1000;
        }

        /// <summary>Pause between a failure and the next attempt to connect or open.</summary>
        public int ReconnectDelayMs { get; set; }

        /// <summary>The open session (frame size, fps, action space); null until the first open succeeds.</summary>
        public SessionInfo Session { get { return _session; } }
        /// <summary>connecting | streaming | retrying: ... | stopped.</summary>
        public string Status { get { return _status; } }
        public BridgeException LastError { get { return _lastError; } }
        public long ChunksReceived { get { return Interlocked.Read(ref _chunks); } }
        /// <summary>Index of the newest chunk received (-1 before the first).</summary>
        public long LastChunkIndex { get { return Interlocked.Read(ref _lastIndex); } }
        /// <summary>The prompt the newest chunk was generated under.</summary>
        public string LastChunkPrompt { get { return _lastPrompt; } }
        public long Reconnects { get { return Interlocked.Read(ref _reconnects); } }

        public void Start()
        {
            if (_thread != null) throw new InvalidOperationException("worker already started");
            _thread = new Thread(Run) { IsBackground = true, Name = "streamvideo-worker" };
            _thread.Start();
        }

        /// <summary>The action the session holds from now on (latest wins; any thread).</summary>
        public void SetAction(ModelAction action)
        {
            Volatile.Write(ref _action, action ?? ModelAction.None);
        }

        /// <summary>Changes the prompt from the next chunk on (latest wins; any thread).</summary>
        public void SetPrompt(string prompt)
        {
            Volatile.Write(ref _pendingPrompt, prompt);
        }

        /// <summary>Stops the thread, closing the session; false if it did not end within <paramref name="timeoutMs"/>.</summary>
        public bool Stop(int timeoutMs)
        {
            _stop.Cancel();
            return _thread == null || _thread.Join(timeoutMs);
        }

        public void Dispose()
        {
            Stop(2000);
        }

        void Run()
        {
            var client = new StreamVideoClient(_factory, _options) { Cancellation = _stop.Token };
            StreamVideoSession session = null;
            bool connected = false;
            try
            {
                while (!_stop.IsCancellationRequested)
                {
                    try
                    {
                        if (!connected)
                        {
                            _status = "connecting";
                            client.Connect();
                            connected = true;
                        }
                        if (session == null)
                        {
                            session = client.Open(_open);
                            _session = session.Info;
                        }
                        session.StartStream(_fps);
                        _status = "streaming";
                        Pump(client, session);
                    }
                    catch (BridgeException err)
                    {
                        _lastError = err;
                        _status = "retrying: " + err.Message;
                        // reclaimed, server restarted, or its stream ended (idle timeout, failed chunk): open anew
                        if (err.Code == "unknown_session" || err.Code == BridgeException.StreamEnded) session = null;
                        if (err.Code == BridgeException.Timeout || err.Code == BridgeException.BadReply)
                        {
                            connected = false;
                            Interlocked.Increment(ref _reconnects);
                        }
                        _stop.Token.WaitHandle.WaitOne(ReconnectDelayMs);
                    }
                }
            }
            catch (OperationCanceledException)
            {
                // Stop() was called while waiting for a reply.
            }
            finally
            {
                Shutdown(client, connected ? session : null);
            }
        }

        /// <summary>Receives chunks and forwards action, prompt and heartbeats until stopped or a request fails.</summary>
        void Pump(StreamVideoClient client, StreamVideoSession session)
        {
            var sent = ModelAction.None;
            var sinceRequest = Stopwatch.StartNew();
            while (!_stop.IsCancellationRequested)
            {
                var chunk = client.ReceiveStreamChunk(StreamPollMs);
                if (chunk != null && chunk.Topic == session.Info.Topic)
                {
                    _frames.Push(chunk);
                    _lastPrompt = chunk.Prompt;
                    Interlocked.Exchange(ref _lastIndex, chunk.Index);
                    Interlocked.Increment(ref _chunks);
                }
                var action = Volatile.Read(ref _action);
                if (!action.Equals(sent))
                {
                    sent = action; // not resent if refused: the error is reported once in LastError
                    sinceRequest.Restart();
                    ReportRefusal(() => session.Act(action));
                }
                var prompt = Interlocked.Exchange(ref _pendingPrompt, null);
                if (prompt != null)
                {
                    sinceRequest.Restart();
                    ReportRefusal(() => session.SetPrompt(prompt));
                }
                if (sinceRequest.ElapsedMilliseconds >= client.Server.HeartbeatMs)
                {
                    sinceRequest.Restart();
                    if (Array.IndexOf(client.Ping(new[] { session.Id }), session.Id) >= 0)
                        throw new BridgeException("unknown_session", "the server no longer knows session " + session.Id);
                }
            }
        }

        /// <summary>
        /// Runs a request whose refusal (bad_action, too_large, ...) only concerns that request: it is reported
        /// in <see cref="LastError"/> and streaming goes on. Connection and session failures propagate.
        /// </summary>
        void ReportRefusal(Action request)
        {
            try
            {
                request();
            }
            catch (BridgeException err) when (err.Code != BridgeException.Timeout && err.Code != BridgeException.BadReply && err.Code != "unknown_session")
            {
                _lastError = err;
            }
        }

        void Shutdown(StreamVideoClient client, StreamVideoSession session)
        {
            client.Cancellation = CancellationToken.None;
            client.RequestTimeoutMs = ShutdownRequestMs;
            client.Attempts = 1;
            try
            {
                if (session != null) session.Close();
            }
            catch (BridgeException err)
            {
                _lastError = err; // the server reclaims the session after its idle timeout anyway
            }
            finally
            {
                client.Dispose();
                _status = "stopped";
            }
        }
    }
}
