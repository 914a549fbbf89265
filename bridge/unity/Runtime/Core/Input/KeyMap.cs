using System.Collections.Generic;
using System.Linq;
using StreamVideo.Protocol;

namespace StreamVideo.Input
{
    /// <summary>A key (or key group) and the action entry it sets while held.</summary>
    public sealed class KeyBinding
    {
        public KeyBinding(string key, int slot, double value, string meaning)
        {
            Key = key;
            Slot = slot;
            Value = value;
            Meaning = meaning;
        }

        /// <summary>Engine-neutral key name: up, down, left, right (arrows / WASD), space, shift, e, q, 1..9.</summary>
        public string Key { get; private set; }
        /// <summary>Discrete: the action id; multi-discrete / continuous: the entry it sets.</summary>
        public int Slot { get; private set; }
        public double Value { get; private set; }
        public string Meaning { get; private set; }
    }

    /// <summary>
    /// Held keys -> a valid action of the model's action space, with the same conventions as
    /// <c>streamvideo play</c> (sdk/keymap.py), so a key means the same thing in pygame and in Unity:
    /// <list type="bullet">
    /// <item>discrete: 0 = no key; 1 up, 2 down, 3 left, 4 right, 5 space, 6 shift, 7 e, 8 q, then 1..9; the newest press wins.</item>
    /// <item>multi-discrete: a key set of size 2 is a button (space, shift, e, q in order); size &gt;= 3 is an axis
    /// (0 none, 1 left / up, 2 right / down), the first horizontal, the second vertical.</item>
    /// <item>continuous: dim 0 horizontal (left -1, right +1), dim 1 vertical (down -1, up +1), further dims are buttons (+1).</item>
    /// </list>
    /// Opposite keys of one axis cancel out. Entries left over when the keys run out stay 0 and are listed in <see cref="Unbound"/>.
    /// </summary>
    public sealed class KeyMap
    {
        static readonly string[] Directions = { "up", "down", "left", "right" };
        static readonly string[] Buttons = { "space", "shift", "e", "q" };
        static readonly string[] Numbers = { "1", "2", "3", "4", "5", "6", "7", "8", "9" };

        readonly ActionSpace _space;
        readonly List<KeyBinding> _bindings = new List<KeyBinding>();
        readonly List<string> _unbound = new List<string>();

        public KeyMap(ActionSpace space)
        {
            _space = space;
            if (space.Kind == "discrete") BindDiscrete();
            else if (space.Kind == "multi_discrete") BindMultiDiscrete();
            else if (space.Kind == "continuous") BindContinuous();
        }

        public IList<KeyBinding> Bindings { get { return _bindings.AsReadOnly(); } }
        public IList<string> Unbound { get { return _unbound.AsReadOnly(); } }

        /// <summary>Every key name this map reads.</summary>
        public IEnumerable<string> Keys { get { return _bindings.Select(b => b.Key).Distinct(); } }

        /// <summary>The action for the keys in <paramref name="held"/>, oldest press first.</summary>
        public ModelAction ActionFor(IList<string> held)
        {
            var active = _bindings.Where(b => held.Contains(b.Key)).ToList();
            if (_space.Kind == "discrete" || _space.Kind == "none")
            {
                var newest = active.OrderByDescending(b => held.IndexOf(b.Key)).FirstOrDefault();
                return ModelAction.Discrete(newest == null ? 0 : newest.Slot);
            }
            int size = _space.Kind == "multi_discrete" ? _space.Sizes.Length : _space.Dim;
            var values = new double[size];
            foreach (var group in active.GroupBy(b => b.Slot))
                values[group.Key] = group.Count() == 1 ? group.First().Value : 0;
            if (_space.Kind == "multi_discrete") return ModelAction.MultiDiscrete(values.Select(v => (int)v).ToArray());
            return ModelAction.Continuous(values.Select(v => (float)v).ToArray());
        }

        void BindDiscrete()
        {
            var keys = Directions.Concat(Buttons).Concat(Numbers).ToArray();
            var names = Directions.Concat(Buttons).ToArray();
            for (int action = 1; action < _space.N; action++)
            {
                if (action > keys.Length)
                {
                    _unbound.Add("action " + action);
                    continue;
                }
                string name = action <= names.Length ? names[action - 1] : "extra";
                _bindings.Add(new KeyBinding(keys[action - 1], action, 1, "action " + action + " (" + name + ")"));
            }
        }

        void BindMultiDiscrete()
        {
            var axes = new Queue<string[]>(new[] { new[] { "left", "right" }, new[] { "up", "down" } });
            var buttons = new Queue<string>(Buttons);
            for (int slot = 0; slot < _space.Sizes.Length; slot++)
            {
                int size = _space.Sizes[slot];
                if (size >= 3 && axes.Count > 0)
                {
                    var axis = axes.Dequeue();
                    _bindings.Add(new KeyBinding(axis[0], slot, 1, "set " + slot + " = 1 (" + axis[0] + ")"));
                    _bindings.Add(new KeyBinding(axis[1], slot, 2, "set " + slot + " = 2 (" + axis[1] + ")"));
                }
                else if (size == 2 && buttons.Count > 0)
                    _bindings.Add(new KeyBinding(buttons.Dequeue(), slot, 1, "set " + slot + " = 1 (button)"));
                else
                    _unbound.Add("key set " + slot + " (size " + size + ")");
            }
        }

        void BindContinuous()
        {
            var axes = new Queue<string[]>(new[] { new[] { "left", "right" }, new[] { "down", "up" } });
            var buttons = new Queue<string>(Buttons);
            for (int dim = 0; dim < _space.Dim; dim++)
            {
                if (axes.Count > 0)
                {
                    var axis = axes.Dequeue();
                    _bindings.Add(new KeyBinding(axis[0], dim, -1, "dim " + dim + " = -1 (" + axis[0] + ")"));
                    _bindings.Add(new KeyBinding(axis[1], dim, 1, "dim " + dim + " = +1 (" + axis[1] + ")"));
                }
                else if (buttons.Count > 0)
                    _bindings.Add(new KeyBinding(buttons.Dequeue(), dim, 1, "dim " + dim + " = +1"));
                else
                    _unbound.Add("dim " + dim);
            }
        }
    }
}
