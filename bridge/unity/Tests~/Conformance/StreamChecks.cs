using System;
using System.Diagnostics;
using System.Linq;
using System.Threading;
using StreamVideo.Client;
using StreamVideo.Protocol;
using StreamVideo.Tests.LibZmq;

namespace StreamVideo.Tests.Conformance
{
    /// <summary>The real-time stream through <see cref="StreamVideoWorker"/>, the same path the Unity sample uses.</summary>
    static class StreamChecks
    {
        const double StreamFps = 30;

        public static void Run(CheckRunner runner, string control, Expected expected)
        {
            var frames = new FrameQueue(64);
            var open = new OpenOptions { Model = expected.Model, Prompt = expected.Prompt, Seed = expected.Seed };
            var worker = new StreamVideoWorker(LibZmqTransport.Create, ControlChecks.Options(control), open, StreamFps, frames);
            string sessionId = null;
            try
            {
                worker.Start();

                runner.Run("stream: chunks arrive on the worker thread, frames equal the Python client's", () =>
                {
                    WaitFor(() => worker.ChunksReceived >= 2, 15000, "2 stream chunks", worker);
                    sessionId = worker.Session.Id;
                    var noop = expected.NoopHashes;
                    int compared = 0;
                    VideoFrame frame;
                    while (frames.TryTake(0, 0, out frame))
                    {
                        CheckRunner.Expect(frame.Width == worker.Session.Width && frame.Height == worker.Session.Height && !frame.IsJpeg, "frame geometry");
                        if (frame.ChunkIndex >= noop.Length) continue;
                        CheckRunner.ExpectEqual(noop[frame.ChunkIndex][frame.IndexInChunk], Expected.Sha256(frame.Data),
                                                "SHA-256 of stream chunk " + frame.ChunkIndex + " frame " + frame.IndexInChunk);
                        compared++;
                    }
                    CheckRunner.Expect(compared > 0, "no stream chunk with index < " + noop.Length + " to compare (slow joiner?)");
                    return worker.ChunksReceived + " chunks, " + compared + " frames identical to a no-op rollout, " + frames.Dropped + " dropped by the queue";
                });

                runner.Run("stream: a bad action is reported, streaming goes on", () =>
                {
                    worker.SetAction(ModelAction.Discrete(expected.BadAction));
                    WaitFor(() => worker.LastError != null, 5000, "the act error", worker);
                    CheckRunner.ExpectEqual("bad_action", worker.LastError.Code, "LastError.Code");
                    worker.SetAction(ModelAction.Discrete(expected.Actions[1]));
                    long seen = worker.ChunksReceived;
                    WaitFor(() => worker.ChunksReceived >= seen + 3, 5000, "3 more chunks", worker);
                    CheckRunner.ExpectEqual("streaming", worker.Status, "worker status");
                    CheckRunner.ExpectEqual(0L, worker.Reconnects, "reconnects");
                    return "bad_action (" + worker.LastError.Detail + "), then " + (worker.ChunksReceived - seen) + " more chunks under action " + expected.Actions[1];
                });

                runner.Run("stream: prompt change reaches the stream", () =>
                {
                    worker.SetPrompt(expected.Prompt2);
                    WaitFor(() => worker.LastChunkPrompt == expected.Prompt2, 5000, "a chunk under the new prompt", worker);
                    return "chunk " + worker.LastChunkIndex + " generated under '" + expected.Prompt2 + "'";
                });
            }
            finally
            {
                var clock = Stopwatch.StartNew();
                bool stopped = worker.Stop(2000);
                runner.Run("shutdown: the worker stops within 2 s and closes its session", () =>
                {
                    CheckRunner.Expect(stopped, "worker thread still running after 2 s");
                    CheckRunner.ExpectEqual("stopped", worker.Status, "status");
                    CheckRunner.Expect(sessionId != null, "no session was opened");
                    using (var client = new StreamVideoClient(LibZmqTransport.Create, ControlChecks.Options(control)))
                    {
                        client.Connect();
                        CheckRunner.Expect(client.Ping(new[] { sessionId }).Contains(sessionId), "session " + sessionId + " still open on the server");
                    }
                    return "stopped in " + clock.ElapsedMilliseconds + " ms, session closed";
                });
            }
        }

        static void WaitFor(Func<bool> condition, int timeoutMs, string what, StreamVideoWorker worker)
        {
            var clock = Stopwatch.StartNew();
            while (!condition())
            {
                if (clock.ElapsedMilliseconds > timeoutMs)
                    throw new CheckFailed("no " + what + " within " + timeoutMs + " ms (worker: " + worker.Status + ")");
                Thread.Sleep(10);
            }
        }
    }
}
