using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using StreamVideo.Client;
using StreamVideo.MessagePack;
using StreamVideo.Protocol;
using StreamVideo.Tests.LibZmq;
using StreamVideo.Transport;

namespace StreamVideo.Tests.Conformance
{
    /// <summary>Control-socket checks: handshake, lock-step episode against the Python client's frames, errors, reconnect, close.</summary>
    static class ControlChecks
    {
        public static void Run(CheckRunner runner, string control, Expected expected)
        {
            using (var client = new StreamVideoClient(LibZmqTransport.Create, Options(control)))
            {
                StreamVideoSession session = null;

                runner.Run("handshake: hello reply matches the Python client's", () =>
                {
                    var server = client.Connect();
                    var hello = expected.Hello;
                    CheckRunner.ExpectEqual(StreamVideoClient.ProtocolVersion, server.Version, "version");
                    CheckRunner.ExpectEqual(string.Join(",", Fields.Strings(hello, "models")), string.Join(",", server.Models), "models");
                    CheckRunner.ExpectEqual(Fields.String(hello, "pub"), server.Pub, "pub");
                    CheckRunner.ExpectEqual(Fields.Int(hello, "heartbeat_ms"), server.HeartbeatMs, "heartbeat_ms");
                    CheckRunner.ExpectEqual(Fields.Int(Fields.Map(hello, "limits"), "max_sessions"), server.MaxSessions, "max_sessions");
                    return server.Server + ", protocol " + server.Version + ", models [" + string.Join(", ", server.Models) + "], stream " + server.Pub;
                });

                runner.Run("open: session info matches the Python client's", () =>
                {
                    session = client.Open(new OpenOptions { Model = expected.Model, Prompt = expected.Prompt, Seed = expected.Seed });
                    var info = session.Info;
                    var open = expected.Open;
                    CheckRunner.Expect(info.Id.Length == 32 && info.Id.All(c => "0123456789abcdef".IndexOf(c) >= 0), "session id must be 32 lowercase hex, got " + info.Id);
                    CheckRunner.ExpectEqual(Fields.Int(open, "frames_per_chunk"), info.FramesPerChunk, "frames_per_chunk");
                    CheckRunner.ExpectEqual(Fields.Int(open, "height"), info.Height, "height");
                    CheckRunner.ExpectEqual(Fields.Int(open, "width"), info.Width, "width");
                    CheckRunner.ExpectEqual(Fields.Double(open, "fps"), info.Fps, "fps");
                    CheckRunner.ExpectEqual(Fields.String(Fields.Map(open, "action_space"), "describe"), info.ActionSpace.Describe, "action space");
                    CheckRunner.ExpectEqual("raw", info.Encoding, "encoding");
                    CheckRunner.ExpectEqual(0, info.UnknownWords.Length, "unknown words (the model records no vocabulary)");
                    return string.Format("{0}: {1} frames/chunk of {2}x{3} at {4} fps, {5}", info.Model, info.FramesPerChunk, info.Width, info.Height, info.Fps, info.ActionSpace.Describe);
                });

                runner.Run("episode: seeded steps + prompt change, frames equal the Python client's", () =>
                {
                    int frames = RunEpisode(session, expected);
                    return expected.Actions.Length + " steps, " + frames + " frames identical (SHA-256), prompt changed before step " + expected.PromptChangeAt;
                });

                runner.Run("reset: a new episode, and the same seed replays the first chunk", () =>
                {
                    CheckRunner.ExpectEqual(0L, session.Reset(expected.Prompt, expected.Seed), "next_index");
                    var chunk = session.Step(ModelAction.Discrete(expected.Actions[0]));
                    CheckRunner.ExpectEqual(0L, chunk.Index, "index after reset");
                    CheckRunner.ExpectEqual(1L, chunk.Episode, "episode after the first reset");
                    ExpectFrames(expected.EpisodeHashes[0], chunk, "chunk 0 after reset");
                    return "episode 1, index 0, frames identical";
                });

                runner.Run("error: bad action is a typed bad_action error and harms nothing", () =>
                {
                    var err = CheckRunner.Throws<BridgeException>(() => session.Step(ModelAction.Discrete(expected.BadAction)), "step with action " + expected.BadAction);
                    CheckRunner.ExpectEqual("bad_action", err.Code, "code");
                    CheckRunner.Expect(err.Detail.Contains(session.Info.ActionSpace.Describe), "message should name the action space: " + err.Detail);
                    CheckRunner.ExpectEqual(1L, session.Step(null).Index, "index of the next good step");
                    return "bad_action: " + err.Detail;
                });

                runner.Run("error: unknown session and version mismatch", () =>
                {
                    var unknown = CheckRunner.Throws<BridgeException>(() => client.Request("step", new Dictionary<string, object> { { "session", new string('0', 32) } }), "step on a made-up session");
                    CheckRunner.ExpectEqual("unknown_session", unknown.Code, "code");
                    var version = CheckRunner.Throws<BridgeException>(() => client.Request("hello", new Dictionary<string, object> { { "version", "2.0" } }), "hello 2.0");
                    CheckRunner.ExpectEqual("version_mismatch", version.Code, "code");
                    // A refused hello changes nothing: the connection's earlier handshake still holds.
                    CheckRunner.Expect(Fields.Long(client.Stats(), "sessions") >= 1, "server stats after the refused hello");
                    return "unknown_session; version_mismatch (" + version.Detail + "); earlier handshake kept";
                });

                runner.Run("stats: session statistics", () =>
                {
                    var stats = session.Stats();
                    CheckRunner.ExpectEqual(false, Fields.Bool(stats, "streaming"), "session streaming");
                    return "keys [" + string.Join(", ", stats.Keys) + "]";
                });

                runner.Run("reconnect: fresh sockets, new handshake, the session lives on", () =>
                {
                    long before = session.Step(null).Index;
                    client.Connect();
                    long after = session.Step(null).Index;
                    CheckRunner.ExpectEqual(before + 1, after, "index after reconnect");
                    return "chunk " + before + " before, " + after + " after";
                });

                runner.Run("jpeg: encoded frames equal the Python client's", () =>
                {
                    var jpeg = client.Open(new OpenOptions { Model = expected.Model, Prompt = expected.Prompt, Seed = expected.Seed, Encoding = "jpeg", Quality = expected.JpegQuality });
                    try
                    {
                        var chunk = jpeg.Step(null);
                        CheckRunner.Expect(chunk.Frames.All(f => f.IsJpeg && f.Data[0] == 0xff && f.Data[1] == 0xd8), "frames must be JPEG files");
                        ExpectFrames(expected.JpegHashes, chunk, "jpeg chunk 0");
                        return chunk.Frames.Length + " JPEG files identical";
                    }
                    finally
                    {
                        jpeg.Close();
                    }
                });

                runner.Run("stream end: stopping a stream publishes its last message, with the reason", () =>
                {
                    var streamed = client.Open(new OpenOptions { Model = expected.Model, Seed = expected.Seed });
                    try
                    {
                        CheckRunner.Expect(streamed.Info.Topic.Length == 32 && streamed.Info.Topic != streamed.Info.Id, "the stream topic must be its own 32-character token");
                        streamed.StartStream(0);
                        var clock = Stopwatch.StartNew();
                        Chunk chunk = null;
                        while (chunk == null && clock.ElapsedMilliseconds < 15000) chunk = client.ReceiveStreamChunk(100);
                        CheckRunner.Expect(chunk != null && chunk.Topic == streamed.Info.Topic, "a chunk under the session's topic");
                        var fields = new Dictionary<string, object> { { "session", streamed.Id }, { "on", false } };
                        client.Request("stream", fields);  // stop, but stay subscribed to see the last message
                        var end = CheckRunner.Throws<BridgeException>(() => { while (clock.ElapsedMilliseconds < 30000) client.ReceiveStreamChunk(100); }, "reading after stop");
                        CheckRunner.ExpectEqual(BridgeException.StreamEnded, end.Code, "code");
                        CheckRunner.Expect(end.Detail.StartsWith("stopped"), "reason should be stopped: " + end.Detail);
                        return "chunk " + chunk.Index + " under the topic, then " + end.Detail;
                    }
                    finally
                    {
                        streamed.Close();
                    }
                });

                runner.Run("close: the session is gone afterwards", () =>
                {
                    session.Close();
                    var err = CheckRunner.Throws<BridgeException>(() => session.Step(null), "step after close");
                    CheckRunner.ExpectEqual("unknown_session", err.Code, "code");
                    CheckRunner.Expect(client.Ping(new[] { session.Id }).Contains(session.Id), "ping must list the closed session as unknown");
                    return "unknown_session after close";
                });
            }

            runner.Run("raw wire: handshake_required and undecodable header", () => RawWireChecks(control));
            runner.Run("timeout: no server means a timeout error, in bounded time", () => TimeoutCheck());
        }

        public static ClientOptions Options(string control)
        {
            return new ClientOptions { ControlEndpoint = control, RequestTimeoutMs = 5000, Attempts = 2, ClientName = "streamvideo-unity conformance" };
        }

        static int RunEpisode(StreamVideoSession session, Expected expected)
        {
            int frames = 0;
            for (int k = 0; k < expected.Actions.Length; k++)
            {
                if (k == expected.PromptChangeAt) session.SetPrompt(expected.Prompt2);
                var chunk = session.Step(ModelAction.Discrete(expected.Actions[k]));
                CheckRunner.ExpectEqual((long)k, chunk.Index, "index of step " + k);
                CheckRunner.ExpectEqual(0L, chunk.Episode, "episode of step " + k);
                CheckRunner.ExpectEqual(k < expected.PromptChangeAt ? expected.Prompt : expected.Prompt2, chunk.Prompt, "prompt of step " + k);
                CheckRunner.Expect(chunk.Nfe > 0, "nfe of step " + k + " must be positive");
                CheckRunner.Expect(chunk.Frames.All(f => f.Width == session.Info.Width && f.Height == session.Info.Height), "frame size of step " + k);
                ExpectFrames(expected.EpisodeHashes[k], chunk, "step " + k);
                frames += chunk.Frames.Length;
            }
            return frames;
        }

        public static void ExpectFrames(string[] hashes, Chunk chunk, string what)
        {
            CheckRunner.ExpectEqual(hashes.Length, chunk.Frames.Length, what + ": frame count");
            for (int t = 0; t < hashes.Length; t++)
                CheckRunner.ExpectEqual(hashes[t], Expected.Sha256(chunk.Frames[t].Data), what + ": SHA-256 of frame " + t);
        }

        static string RawWireChecks(string control)
        {
            using (var transport = LibZmqTransport.Create(control, null))
            {
                var open = MsgPackWriter.Encode(new Dictionary<string, object> { { "id", 41L }, { "op", "open" } });
                var reply = RawExchange(transport, new List<byte[]> { open });
                CheckRunner.ExpectEqual((long?)41, reply.Id, "id echoed");
                CheckRunner.ExpectEqual("handshake_required", reply.ErrorCode, "open before hello");
                reply = RawExchange(transport, new List<byte[]> { new byte[] { 0xc1, 0x00 } });
                CheckRunner.ExpectEqual((long?)null, reply.Id, "id of the reply to an undecodable header");
                CheckRunner.ExpectEqual("bad_message", reply.ErrorCode, "undecodable header");
                return "handshake_required (id 41), bad_message (id nil): " + reply.ErrorMessage;
            }
        }

        static Reply RawExchange(ITransport transport, List<byte[]> frames)
        {
            CheckRunner.Expect(transport.SendControl(frames, 2000), "could not send");
            var message = transport.ReceiveControl(5000);
            CheckRunner.Expect(message != null, "no reply within 5 s");
            return new Reply((Dictionary<string, object>)MsgPackReader.Decode(message[0]), message.GetRange(1, message.Count - 1));
        }

        static string TimeoutCheck()
        {
            var options = new ClientOptions { ControlEndpoint = "tcp://127.0.0.1:9", RequestTimeoutMs = 300, Attempts = 2 };
            using (var client = new StreamVideoClient(LibZmqTransport.Create, options))
            {
                var clock = Stopwatch.StartNew();
                var err = CheckRunner.Throws<BridgeException>(() => client.Connect(), "hello to a closed port");
                CheckRunner.ExpectEqual(BridgeException.Timeout, err.Code, "code");
                CheckRunner.Expect(clock.ElapsedMilliseconds >= 600 && clock.ElapsedMilliseconds < 3000, "2 attempts x 300 ms took " + clock.ElapsedMilliseconds + " ms");
                return err.Detail;
            }
        }
    }
}
