using System;
using System.Collections.Generic;
using System.Linq;
using StreamVideo.MessagePack;

namespace StreamVideo.Tests.Unit
{
    /// <summary>The MessagePack codec against msgpack-python's bytes (the fixture), and against malformed input.</summary>
    static class CodecChecks
    {
        public static void Run(CheckRunner runner, Dictionary<string, object> fixture)
        {
            var python = (Dictionary<string, object>)fixture["values"];
            var ours = CodecCases.RoundTrip();

            runner.Run("codec: same case names as the Python fixture", () =>
            {
                var missing = python.Keys.Except(ours.Keys).Concat(ours.Keys.Except(python.Keys)).ToList();
                CheckRunner.Expect(missing.Count == 0, "names on one side only: " + string.Join(", ", missing));
                return ours.Count + " cases";
            });

            runner.Run("codec: encoding equals msgpack-python byte for byte", () =>
            {
                foreach (var name in ours.Keys.Intersect(python.Keys))
                {
                    var expected = (byte[])python[name];
                    var actual = MsgPackWriter.Encode(ours[name]);
                    CheckRunner.Expect(expected.SequenceEqual(actual), name + ": " + Hex(actual) + " != msgpack-python " + Hex(expected));
                }
                return python.Count + " values, smallest forms (fixint .. int64/uint64, str8/16/32, bin8/16/32, array16/32, map16/32)";
            });

            runner.Run("codec: decodes msgpack-python output", () =>
            {
                var decodeOnly = (Dictionary<string, object>)fixture["decode_only"];
                var expectedValues = ours.Concat(CodecCases.DecodeOnly()).ToDictionary(kv => kv.Key, kv => kv.Value);
                foreach (var entry in python.Concat(decodeOnly))
                {
                    var decoded = MsgPackReader.Decode((byte[])entry.Value);
                    CheckRunner.Expect(ValueTree.Equal(expectedValues[entry.Key], decoded), entry.Key + ": decoded value differs");
                }
                return (python.Count + decodeOnly.Count) + " values incl. float32";
            });

            runner.Run("codec: refuses malformed input with FormatException", () =>
            {
                var bad = new Dictionary<string, byte[]>
                {
                    { "empty", new byte[0] },
                    { "truncated str", new byte[] { 0xa5, 0x61 } },
                    { "bin32 claiming 2 GiB", new byte[] { 0xc6, 0x7f, 0xff, 0xff, 0xff } },
                    { "array32 claiming 4e9 items", new byte[] { 0xdd, 0xff, 0xff, 0xff, 0xf0 } },
                    { "ext type", new byte[] { 0xd4, 0x01, 0x00 } },
                    { "reserved 0xc1", new byte[] { 0xc1 } },
                    { "integer map key", new byte[] { 0x81, 0x01, 0x02 } },
                    { "trailing bytes", new byte[] { 0x01, 0x02 } },
                    { "nesting 1000 deep", Enumerable.Repeat((byte)0x91, 1000).Concat(new byte[] { 0xc0 }).ToArray() },
                };
                foreach (var entry in bad)
                    CheckRunner.Throws<FormatException>(() => MsgPackReader.Decode(entry.Value), entry.Key);
                return bad.Count + " malformed inputs refused";
            });
        }

        static string Hex(byte[] bytes)
        {
            var head = BitConverter.ToString(bytes.Take(24).ToArray());
            return bytes.Length > 24 ? head + "...(" + bytes.Length + " bytes)" : head;
        }
    }
}
