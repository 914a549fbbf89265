using System.Collections.Generic;
using System.Linq;

namespace StreamVideo.Tests.Unit
{
    /// <summary>Deep equality of decoded MessagePack value trees.</summary>
    static class ValueTree
    {
        public static bool Equal(object a, object b)
        {
            if (a == null || b == null) return a == null && b == null;
            if (a is byte[] && b is byte[]) return ((byte[])a).SequenceEqual((byte[])b);
            if (a is double && b is double) return ((double)a).Equals((double)b) && (1 / (double)a > 0) == (1 / (double)b > 0);
            var listA = a as List<object>;
            var listB = b as List<object>;
            if (listA != null && listB != null) return listA.Count == listB.Count && listA.Zip(listB, Equal).All(x => x);
            var mapA = a as Dictionary<string, object>;
            var mapB = b as Dictionary<string, object>;
            if (mapA != null && mapB != null)
                return mapA.Count == mapB.Count && mapA.All(kv => mapB.ContainsKey(kv.Key) && Equal(kv.Value, mapB[kv.Key]));
            return a.GetType() == b.GetType() && a.Equals(b);
        }
    }
}
