using System;
using System.Collections.Generic;
using System.Linq;
using StreamVideo.Client;
using StreamVideo.Input;
using StreamVideo.MessagePack;
using StreamVideo.Protocol;
using StreamVideo.Transport;

namespace StreamVideo.Tests.Unit
{
    /// <summary>Engine-independent pieces without a server: keys, key map, frame queue, endpoints, chunk decoding, actions.</summary>
    static class CoreChecks
    {
        public static void Run(CheckRunner runner, Dictionary<string, object> fixture)
        {
            runner.Run("z85: decodes pyzmq's encoding", () =>
            {
                var pairs = (List<object>)fixture["z85"];
                foreach (List<object> pair in pairs)
                    CheckRunner.Expect(Z85.Decode((string)pair[0]).SequenceEqual((byte[])pair[1]), "Z85 " + pair[0] + " decoded wrong");
                CheckRunner.Throws<FormatException>(() => Z85.Decode("abcd"), "length not a multiple of 5");
                CheckRunner.Throws<FormatException>(() => Z85.Decode("abc~e"), "character outside the alphabet");
                return pairs.Count + " keys";
            });

            runner.Run("curve: reads zmq.auth certificate files", () =>
            {
                var certs = (Dictionary<string, object>)fixture["certificates"];
                var keys = CurveKeys.FromCertificateFiles((string)certs["server_public_file"], (string)certs["client_secret_file"]);
                CheckRunner.Expect(keys.ServerPublicKey.SequenceEqual((byte[])certs["server_public"]), "server public key differs");
                CheckRunner.Expect(keys.ClientPublicKey.SequenceEqual((byte[])certs["client_public"]), "client public key differs");
                CheckRunner.Expect(keys.ClientSecretKey.SequenceEqual((byte[])certs["client_secret"]), "client secret key differs");
                CheckRunner.Throws<FormatException>(() => CurveKeys.FromCertificateFiles((string)certs["server_public_file"], (string)certs["server_public_file"]),
                                                    "a public certificate given as the client's secret one");
                return "server.key + NAME.key_secret";
            });

            runner.Run("keymap: discrete, newest press wins", () =>
            {
                var map = new KeyMap(Space("discrete", n: 6));
                CheckRunner.ExpectEqual(ModelAction.Discrete(0), map.ActionFor(new string[0]), "no key");
                CheckRunner.ExpectEqual(ModelAction.Discrete(3), map.ActionFor(new[] { "left" }), "left");
                CheckRunner.ExpectEqual(ModelAction.Discrete(3), map.ActionFor(new[] { "up", "left" }), "up then left");
                CheckRunner.ExpectEqual(ModelAction.Discrete(5), map.ActionFor(new[] { "space" }), "space");
                CheckRunner.ExpectEqual(0, map.Unbound.Count, "unbound entries");
                var big = new KeyMap(Space("discrete", n: 20));
                CheckRunner.ExpectEqual(ModelAction.Discrete(9), big.ActionFor(new[] { "1" }), "number key 1");
                CheckRunner.ExpectEqual("action 18, action 19", string.Join(", ", big.Unbound), "unbound");
                return "Discrete(6) and Discrete(20)";
            });

            runner.Run("keymap: multi-discrete axes and buttons, continuous axes cancel", () =>
            {
                var multi = new KeyMap(Space("multi_discrete", sizes: new[] { 3, 3, 2, 5 }));
                CheckRunner.ExpectEqual(ModelAction.MultiDiscrete(new[] { 2, 1, 1, 0 }), multi.ActionFor(new[] { "right", "up", "space" }), "right+up+space");
                CheckRunner.ExpectEqual("key set 3 (size 5)", string.Join(", ", multi.Unbound), "unbound");
                var box = new KeyMap(Space("continuous", dim: 3));
                CheckRunner.ExpectEqual(ModelAction.Continuous(new[] { 0f, 1f, 1f }), box.ActionFor(new[] { "left", "right", "up", "space" }), "left+right cancel");
                CheckRunner.ExpectEqual(ModelAction.Continuous(new[] { -1f, -1f, 0f }), box.ActionFor(new[] { "left", "down" }), "left+down");
                return "MultiDiscrete([3, 3, 2, 5]) and Box(3)";
            });

            runner.Run("action: wire forms", () =>
            {
                CheckRunner.Expect(ModelAction.None.Wire == null, "None must be nil");
                CheckRunner.Expect(MsgPackWriter.Encode(ModelAction.Discrete(3).Wire).SequenceEqual(new byte[] { 0x03 }), "Discrete(3) must be the integer 3");
                var wire = MsgPackReader.Decode(MsgPackWriter.Encode(ModelAction.Continuous(new[] { 0.5f, -1f }).Wire));
                CheckRunner.Expect(ValueTree.Equal(new List<object> { 0.5, -1.0 }, wire), "Continuous must be a flat array of numbers");
                CheckRunner.Expect(!ModelAction.Continuous(new[] { 0.1f }).Equals(ModelAction.Continuous(new[] { 0.1000001f })), "distinct floats must differ");
                return "nil, integer, array of numbers";
            });

            runner.Run("frame queue: paced at fps, oldest dropped when full", () =>
            {
                var queue = new FrameQueue(4);
                queue.Push(FakeChunk(0, 3));
                queue.Push(FakeChunk(1, 3));
                CheckRunner.ExpectEqual(4, queue.Count, "frames held");
                CheckRunner.ExpectEqual(2L, queue.Dropped, "frames dropped");
                VideoFrame frame;
                CheckRunner.Expect(queue.TryTake(10.0, 10, out frame) && frame.ChunkIndex == 0 && frame.IndexInChunk == 2, "first frame left is chunk 0 frame 2");
                CheckRunner.Expect(!queue.TryTake(10.05, 10, out frame), "second frame is not due before 1/fps");
                CheckRunner.Expect(queue.TryTake(10.1, 10, out frame) && frame.ChunkIndex == 1 && frame.IndexInChunk == 0, "second frame due at 1/fps");
                CheckRunner.Expect(queue.TryTake(11.0, 10, out frame) && queue.TryTake(11.0 + 0.1, 10, out frame), "a late reader resumes from now");
                CheckRunner.Expect(!queue.TryTake(20.0, 10, out frame), "empty queue");
                return "capacity 4, 10 fps";
            });

            runner.Run("endpoints: wildcard stream host replaced by the control host", () =>
            {
                CheckRunner.ExpectEqual("tcp://10.0.0.5:5556", Endpoints.ReplaceWildcardHost("tcp://0.0.0.0:5556", "tcp://10.0.0.5:5555"), "0.0.0.0");
                CheckRunner.ExpectEqual("tcp://example.org:7", Endpoints.ReplaceWildcardHost("tcp://*:7", "tcp://example.org:5555"), "*");
                CheckRunner.ExpectEqual("tcp://127.0.0.1:5556", Endpoints.ReplaceWildcardHost("tcp://127.0.0.1:5556", "tcp://10.0.0.5:5555"), "explicit host");
                return "0.0.0.0, *, explicit";
            });

            runner.Run("chunk: raw frames split, malformed chunks refused as bad_reply", () =>
            {
                var pixels = Enumerable.Range(0, 2 * 2 * 1 * 3).Select(i => (byte)i).ToArray();
                var chunk = Chunk.FromReply(ChunkHeader("raw", 2, 1), new List<byte[]> { pixels });
                CheckRunner.Expect(chunk.Frames.Length == 2 && chunk.Frames[1].Data[0] == 6 && !chunk.Frames[1].IsJpeg, "two 2x1 frames, the second starting at byte 6");
                var tooShort = CheckRunner.Throws<BridgeException>(() => Chunk.FromReply(ChunkHeader("raw", 2, 1), new List<byte[]> { new byte[5] }), "short buffer");
                CheckRunner.ExpectEqual(BridgeException.BadReply, tooShort.Code, "code");
                CheckRunner.Throws<BridgeException>(() => Chunk.FromReply(ChunkHeader("jpeg", 2, 1), new List<byte[]> { new byte[1] }), "jpeg with one buffer for two frames");
                CheckRunner.Throws<BridgeException>(() => Chunk.FromReply(ChunkHeader("png", 1, 1), new List<byte[]> { new byte[3] }), "unknown encoding");
                return "raw split, short buffer, missing jpeg frames, unknown encoding";
            });
        }

        static ActionSpace Space(string kind, int n = 0, int[] sizes = null, int dim = 0)
        {
            return new ActionSpace { Kind = kind, N = n, Sizes = sizes ?? new int[0], Dim = dim, Describe = kind };
        }

        static Chunk FakeChunk(long index, int frames)
        {
            return Chunk.FromReply(ChunkHeader("raw", frames, 1, index), new List<byte[]> { new byte[frames * 2 * 1 * 3] });
        }

        static Dictionary<string, object> ChunkHeader(string encoding, int frames, long width, long index = 0)
        {
            var map = new Dictionary<string, object>
            {
                { "encoding", encoding }, { "dtype", "uint8" }, { "buffer", 1L },
                { "shape", new List<object> { (long)frames, 2L, width, 3L } },
            };
            return new Dictionary<string, object> { { "index", index }, { "nfe", 2L }, { "seconds", 0.01 }, { "prompt", "p" }, { "frames", map } };
        }
    }
}
