using System;
using System.Globalization;
using System.Linq;

namespace StreamVideo.Protocol
{
    /// <summary>
    /// An action in wire form (PROTOCOL.md section 2.1): nil (the model's no-op), an integer (discrete),
    /// or a flat array of numbers (multi-discrete integers, continuous values in [-1, 1]).
    /// Immutable, with value equality, so a controller can hand the latest one to another thread.
    /// </summary>
    public sealed class ModelAction : IEquatable<ModelAction>
    {
        public static readonly ModelAction None = new ModelAction(null, "none");

        readonly object _wire;
        readonly string _text;

        ModelAction(object wire, string text)
        {
            _wire = wire;
            _text = text;
        }

        public static ModelAction Discrete(int action)
        {
            return new ModelAction((long)action, action.ToString());
        }

        public static ModelAction MultiDiscrete(int[] choices)
        {
            return new ModelAction(choices.Select(c => (object)(long)c).ToList(), "[" + string.Join(", ", choices) + "]");
        }

        public static ModelAction Continuous(float[] values)
        {
            return new ModelAction(values.Select(v => (object)(double)v).ToList(), "[" + string.Join(", ", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture))) + "]");
        }

        /// <summary>The value for the request's <c>action</c> field.</summary>
        public object Wire { get { return _wire; } }

        public bool Equals(ModelAction other)
        {
            return other != null && _text == other._text;
        }

        public override bool Equals(object obj) { return Equals(obj as ModelAction); }

        public override int GetHashCode() { return _text.GetHashCode(); }

        public override string ToString() { return _text; }
    }
}
