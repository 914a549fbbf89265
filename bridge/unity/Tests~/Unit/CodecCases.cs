using System.Collections.Generic;
using System.Linq;

namespace StreamVideo.Tests.Unit
{
    /// <summary>
    /// The values of the codec fixture, by name. tests/bridge/test_unity_client.py builds the same table in Python
    /// and packs each value with msgpack-python; the names must match one to one.
    /// </summary>
    static class CodecCases
    {
        static readonly long[] Ints = { 0, 1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, long.MaxValue,
                                        -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, long.MinValue };
        static readonly int[] StringLengths = { 0, 31, 32, 255, 256, 65535, 65536 };
        static readonly int[] BinLengths = { 0, 255, 256, 65535, 65536 };
        static readonly int[] ArrayLengths = { 0, 15, 16, 65535, 65536 };
        static readonly int[] MapSizes = { 0, 15, 16, 65536 };

        /// <summary>Values encoded both ways (C# output must equal msgpack-python's bytes).</summary>
        public static Dictionary<string, object> RoundTrip()
        {
            var cases = new Dictionary<string, object>
            {
                { "nil", null }, { "true", true }, { "false", false },
                { "uint64:max", ulong.MaxValue },
                { "double:0.5", 0.5 }, { "double:-1.25e300", -1.25e300 }, { "double:third", 1.0 / 3 }, { "double:-0", -0.0 },
                { "str:unicode", "h\u00e9llo w\u00f6rld \u2713 \u4e16\u754c" },
                { "request", new Dictionary<string, object>
                    {
                        { "id", 7L }, { "op", "step" }, { "session", string.Concat(Enumerable.Repeat("9f0c", 8)) },
                        { "action", new List<object> { 1L, 0L, 2L } }, { "fps", 15.0 }, { "on", true },
                        { "frames", new Dictionary<string, object> { { "dtype", "uint8" }, { "shape", new List<object> { 2L, 2L, 3L } }, { "data", Blob(12) } } },
                        { "nothing", null },
                    } },
            };
            foreach (var v in Ints) cases["int:" + v] = v;
            foreach (var n in StringLengths) cases["str:" + n] = new string('a', n);
            foreach (var n in BinLengths) cases["bin:" + n] = Blob(n);
            foreach (var n in ArrayLengths) cases["array:" + n] = Enumerable.Range(0, n).Select(i => (object)(long)i).ToList();
            foreach (var n in MapSizes) cases["map:" + n] = Enumerable.Range(0, n).ToDictionary(i => "k" + i, i => (object)(long)i);
            return cases;
        }

        /// <summary>Forms this codec reads but never writes (msgpack-python's use_single_float=True).</summary>
        public static Dictionary<string, object> DecodeOnly()
        {
            return new Dictionary<string, object> { { "float32:0.5", 0.5 }, { "float32:-2.75", -2.75 } };
        }

        static byte[] Blob(int n)
        {
            return Enumerable.Range(0, n).Select(i => (byte)(i % 251)).ToArray();
        }
    }
}
