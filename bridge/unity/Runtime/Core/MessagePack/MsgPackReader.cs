using System;
using System.Collections.Generic;
using System.Text;

namespace StreamVideo.MessagePack
{
    /// <summary>
    /// MessagePack (spec 2.0) decoder into plain value trees: null, bool, long (ulong above long.MaxValue),
    /// double (float32 widened), string, byte[] (bin), List&lt;object&gt; (array) and
    /// Dictionary&lt;string, object&gt; (map; non-string keys are refused, as the protocol has none).
    /// Ext types are refused. Lengths are checked against the bytes left before anything is allocated,
    /// and nesting is bounded, so a hostile message cannot exhaust memory or the stack.
    /// Throws <see cref="FormatException"/> for anything malformed.
    /// </summary>
    public sealed class MsgPackReader
    {
        const int MaxDepth = 64;
        readonly byte[] _data;
        int _pos;
        int _depth;

        MsgPackReader(byte[] data)
        {
            _data = data;
        }

        /// <summary>Decodes exactly one value that must span all of <paramref name="data"/>.</summary>
        public static object Decode(byte[] data)
        {
            var reader = new MsgPackReader(data);
            var value = reader.ReadValue();
            if (reader._pos != data.Length)
                throw new FormatException("MessagePack: " + (data.Length - reader._pos) + " extra bytes after the value");
            return value;
        }

        object ReadValue()
        {
            byte code = Byte();
            if (code <= 0x7f) return (long)code;
            if (code >= 0xe0) return (long)(sbyte)code;
            if (code <= 0x8f) return ReadMap(code & 0x0f);
            if (code <= 0x9f) return ReadArray(code & 0x0f);
            if (code <= 0xbf) return ReadString(code & 0x1f);
            switch (code)
            {
                case 0xc0: return null;
                case 0xc2: return false;
                case 0xc3: return true;
                case 0xc4: return Bytes(Length(1));
                case 0xc5: return Bytes(Length(2));
                case 0xc6: return Bytes(Length(4));
                case 0xca: return (double)BitConverter.ToSingle(NativeOrder(4), 0);
                case 0xcb: return BitConverter.ToDouble(NativeOrder(8), 0);
                case 0xcc: return (long)BigEndian(1);
                case 0xcd: return (long)BigEndian(2);
                case 0xce: return (long)BigEndian(4);
                case 0xcf:
                    ulong u = BigEndian(8);
                    return u <= long.MaxValue ? (object)(long)u : u;
                case 0xd0: return (long)(sbyte)BigEndian(1);
                case 0xd1: return (long)(short)BigEndian(2);
                case 0xd2: return (long)(int)BigEndian(4);
                case 0xd3: return (long)BigEndian(8);
                case 0xd9: return ReadString(Length(1));
                case 0xda: return ReadString(Length(2));
                case 0xdb: return ReadString(Length(4));
                case 0xdc: return ReadArray(Length(2));
                case 0xdd: return ReadArray(Length(4));
                case 0xde: return ReadMap(Length(2));
                case 0xdf: return ReadMap(Length(4));
                default:
                    throw new FormatException(string.Format("MessagePack: type 0x{0:x2} (ext or reserved) is not supported", code));
            }
        }

        List<object> ReadArray(int count)
        {
            Need(count); // every element takes at least one byte
            Enter();
            var list = new List<object>(count);
            for (int i = 0; i < count; i++) list.Add(ReadValue());
            _depth--;
            return list;
        }

        Dictionary<string, object> ReadMap(int count)
        {
            Need(2L * count);
            Enter();
            var map = new Dictionary<string, object>(count);
            for (int i = 0; i < count; i++)
            {
                var key = ReadValue() as string;
                if (key == null) throw new FormatException("MessagePack: map keys must be strings");
                map[key] = ReadValue();
            }
            _depth--;
            return map;
        }

        string ReadString(int length)
        {
            Need(length);
            var text = Encoding.UTF8.GetString(_data, _pos, length);
            _pos += length;
            return text;
        }

        void Enter()
        {
            if (++_depth > MaxDepth) throw new FormatException("MessagePack: nesting deeper than " + MaxDepth);
        }

        int Length(int size)
        {
            ulong n = BigEndian(size);
            if (n > int.MaxValue) throw new FormatException("MessagePack: length " + n + " is too large");
            return (int)n;
        }

        ulong BigEndian(int size)
        {
            Need(size);
            ulong value = 0;
            for (int i = 0; i < size; i++) value = (value << 8) | _data[_pos++];
            return value;
        }

        byte[] NativeOrder(int size)
        {
            var bytes = Bytes(size);
            if (BitConverter.IsLittleEndian) Array.Reverse(bytes);
            return bytes;
        }

        byte[] Bytes(int length)
        {
            Need(length);
            var bytes = new byte[length];
            Buffer.BlockCopy(_data, _pos, bytes, 0, length);
            _pos += length;
            return bytes;
        }

        byte Byte()
        {
            Need(1);
            return _data[_pos++];
        }

        void Need(long count)
        {
            if (count > _data.Length - _pos)
                throw new FormatException("MessagePack: truncated (needs " + count + " more bytes, " + (_data.Length - _pos) + " left)");
        }
    }
}
