using System.Collections.Generic;
using UnityEngine;

namespace StreamVideo.Unity
{
    /// <summary>
    /// Unity key codes behind the engine-neutral key names of <see cref="StreamVideo.Input.KeyMap"/>, and the
    /// list of held keys in press order that <c>KeyMap.ActionFor</c> expects. Reads the Input Manager
    /// (<c>Input.GetKey</c>): set Player Settings > Active Input Handling to "Input Manager (Old)" or "Both".
    /// </summary>
    public sealed class KeyboardKeys
    {
        static readonly Dictionary<string, KeyCode[]> Codes = new Dictionary<string, KeyCode[]>
        {
            { "up", new[] { KeyCode.UpArrow, KeyCode.W } },
            { "down", new[] { KeyCode.DownArrow, KeyCode.S } },
            { "left", new[] { KeyCode.LeftArrow, KeyCode.A } },
            { "right", new[] { KeyCode.RightArrow, KeyCode.D } },
            { "space", new[] { KeyCode.Space } },
            { "shift", new[] { KeyCode.LeftShift, KeyCode.RightShift } },
            { "e", new[] { KeyCode.E } },
            { "q", new[] { KeyCode.Q } },
            { "1", new[] { KeyCode.Alpha1 } }, { "2", new[] { KeyCode.Alpha2 } }, { "3", new[] { KeyCode.Alpha3 } },
            { "4", new[] { KeyCode.Alpha4 } }, { "5", new[] { KeyCode.Alpha5 } }, { "6", new[] { KeyCode.Alpha6 } },
            { "7", new[] { KeyCode.Alpha7 } }, { "8", new[] { KeyCode.Alpha8 } }, { "9", new[] { KeyCode.Alpha9 } },
        };

        readonly List<string> _held = new List<string>();

        /// <summary>Held key names, oldest press first.</summary>
        public IList<string> Held { get { return _held; } }

        /// <summary>Updates <see cref="Held"/> for the keys in <paramref name="names"/>; call once per frame.</summary>
        public void Poll(IEnumerable<string> names)
        {
            foreach (var name in names)
            {
                bool down = IsDown(name);
                if (down && !_held.Contains(name)) _held.Add(name);
                else if (!down) _held.Remove(name);
            }
        }

        public void Clear()
        {
            _held.Clear();
        }

        static bool IsDown(string name)
        {
            KeyCode[] codes;
            if (!Codes.TryGetValue(name, out codes)) return false;
            foreach (var code in codes)
                if (UnityEngine.Input.GetKey(code)) return true;
            return false;
        }
    }
}
