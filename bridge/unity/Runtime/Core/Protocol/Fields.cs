using System;
using System.Collections.Generic;

namespace StreamVideo.Protocol
{
    /// <summary>
    /// Typed reads of decoded MessagePack maps. A missing or mistyped field raises
    /// <see cref="BridgeException"/> with code <c>bad_reply</c>, naming the field, what was expected and what came.
    /// </summary>
    public static class Fields
    {
        public static bool Has(IDictionary<string, object> map, string key)
        {
            object value;
            return map.TryGetValue(key, out value) && value != null;
        }

        public static string String(IDictionary<string, object> map, string key)
        {
            return As<string>(map, key, "a string");
        }

        public static long Long(IDictionary<string, object> map, string key)
        {
            return As<long>(map, key, "an integer");
        }

        public static int Int(IDictionary<string, object> map, string key)
        {
            long value = Long(map, key);
            if (value < int.MinValue || value > int.MaxValue) throw Bad(key, "a 32-bit integer", value);
            return (int)value;
        }

        public static double Double(IDictionary<string, object> map, string key)
        {
            var value = Get(map, key);
            if (value is double) return (double)value;
            if (value is long) return (long)value;
            throw Bad(key, "a number", value);
        }

        public static bool Bool(IDictionary<string, object> map, string key)
        {
            return As<bool>(map, key, "true or false");
        }

        public static Dictionary<string, object> Map(IDictionary<string, object> map, string key)
        {
            return As<Dictionary<string, object>>(map, key, "a map");
        }

        public static List<object> List(IDictionary<string, object> map, string key)
        {
            return As<List<object>>(map, key, "an array");
        }

        public static string[] Strings(IDictionary<string, object> map, string key)
        {
            var list = List(map, key);
            var result = new string[list.Count];
            for (int i = 0; i < list.Count; i++)
            {
                result[i] = list[i] as string;
                if (result[i] == null) throw Bad(key + "[" + i + "]", "a string", list[i]);
            }
            return result;
        }

        public static int[] Ints(IDictionary<string, object> map, string key)
        {
            var list = List(map, key);
            var result = new int[list.Count];
            for (int i = 0; i < list.Count; i++)
            {
                if (!(list[i] is long)) throw Bad(key + "[" + i + "]", "an integer", list[i]);
                result[i] = checked((int)(long)list[i]);
            }
            return result;
        }

        static T As<T>(IDictionary<string, object> map, string key, string expected)
        {
            var value = Get(map, key);
            if (value is T) return (T)value;
            throw Bad(key, expected, value);
        }

        static object Get(IDictionary<string, object> map, string key)
        {
            object value;
            if (!map.TryGetValue(key, out value)) throw new BridgeException(BridgeException.BadReply, "field '" + key + "' is missing");
            return value;
        }

        static BridgeException Bad(string key, string expected, object value)
        {
            string kind = value == null ? "nil" : value.GetType().Name;
            return new BridgeException(BridgeException.BadReply, "field '" + key + "' must be " + expected + ", got " + kind);
        }
    }
}
