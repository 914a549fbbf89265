using System;
using System.Collections;
using System.Text;

namespace StreamVideo.MessagePack
{
    /// <summary>
    /// MessagePack (spec 2.0) encoder for plain value trees: null, bool, integers, float/double, string,
    /// byte[] (bin), IList (array) and IDictionary with string keys (map). Every value takes its smallest
    /// form, as msgpack-python writes it, so the bytes match the Python side exactly. No reflection, no code
    /// generation: safe under IL2CPP / AOT.
    /// </summary>
    public sealed class MsgPackWriter
    {
        byte[] _buffer = new byte[256];
        int _length;

        public static byte[] Encode(object value)
        {
            var writer = new MsgPackWriter();
            writer.Write(value);
            return writer.ToArray();
        }

        public byte[] ToArray()
        {
            var result = new byte[_length];
            Buffer.BlockCopy(_buffer, 0, result, 0, _length);
            return result;
        }

        public void Write(object value)
        {
            if (value == null) { WriteNil(); return; }
            if (value is bool) { WriteBool((bool)value); return; }
            if (value is string) { WriteString((string)value); return; }
            if (value is byte[]) { WriteBin((byte[])value); return; }
            if (value is double) { WriteDouble((double)value); return; }
            if (value is float) { WriteDouble((float)value); return; }
            if (value is ulong) { WriteUInt((ulong)value); return; }
            if (value is uint) { WriteUInt((uint)value); return; }
            if (value is ushort) { WriteUInt((ushort)value); return; }
            if (value is long || value is int || value is short || value is sbyte || value is byte)
            {
                WriteInt(Convert.ToInt64(value));
                return;
            }
            var map = value as IDictionary;
            if (map != null) { WriteMap(map); return; }
            var list = value as IList;
            if (list != null) { WriteList(list); return; }
            throw new ArgumentException("MessagePack cannot encode a " + value.GetType().Name);
        }

        public void WriteNil() { Put(0xc0); }

        public void WriteBool(bool value) { Put(value ? (byte)0xc3 : (byte)0xc2); }

        public void WriteInt(long value)
        {
            if (value >= 0) { WriteUInt((ulong)value); return; }
            if (value >= -32) { Put((byte)(sbyte)value); return; }
            if (value >= sbyte.MinValue) { Put(0xd0); Put((byte)(sbyte)value); return; }
            if (value >= short.MinValue) { Put(0xd1); PutBigEndian((ulong)(ushort)(short)value, 2); return; }
            if (value >= int.MinValue) { Put(0xd2); PutBigEndian((ulong)(uint)(int)value, 4); return; }
            Put(0xd3);
            PutBigEndian((ulong)value, 8);
        }

        public void WriteUInt(ulong value)
        {
            if (value < 0x80) { Put((byte)value); return; }
            if (value <= byte.MaxValue) { Put(0xcc); Put((byte)value); return; }
            if (value <= ushort.MaxValue) { Put(0xcd); PutBigEndian(value, 2); return; }
            if (value <= uint.MaxValue) { Put(0xce); PutBigEndian(value, 4); return; }
            Put(0xcf);
            PutBigEndian(value, 8);
        }

        public void WriteDouble(double value)
        {
            Put(0xcb);
            PutBigEndian((ulong)BitConverter.DoubleToInt64Bits(value), 8);
        }

        public void WriteString(string value)
        {
            var bytes = Encoding.UTF8.GetBytes(value);
            int n = bytes.Length;
            if (n < 32) Put((byte)(0xa0 | n));
            else if (n <= byte.MaxValue) { Put(0xd9); Put((byte)n); }
            else if (n <= ushort.MaxValue) { Put(0xda); PutBigEndian((ulong)n, 2); }
            else { Put(0xdb); PutBigEndian((ulong)n, 4); }
            PutBytes(bytes);
        }

        public void WriteBin(byte[] value)
        {
            int n = value.Length;
            if (n <= byte.MaxValue) { Put(0xc4); Put((byte)n); }
            else if (n <= ushort.MaxValue) { Put(0xc5); PutBigEndian((ulong)n, 2); }
            else { Put(0xc6); PutBigEndian((ulong)n, 4); }
            PutBytes(value);
        }

        public void WriteArrayHeader(int count) { WriteHeader(count, 0x90, 0xdc, 0xdd); }

        public void WriteMapHeader(int count) { WriteHeader(count, 0x80, 0xde, 0xdf); }

        void WriteList(IList list)
        {
            WriteArrayHeader(list.Count);
            foreach (var item in list) Write(item);
        }

        void WriteMap(IDictionary map)
        {
            WriteMapHeader(map.Count);
            foreach (DictionaryEntry entry in map)
            {
                var key = entry.Key as string;
                if (key == null) throw new ArgumentException("MessagePack maps of this protocol have string keys only");
                WriteString(key);
                Write(entry.Value);
            }
        }

        void WriteHeader(int count, byte fix, byte code16, byte code32)
        {
            if (count < 16) Put((byte)(fix | count));
            else if (count <= ushort.MaxValue) { Put(code16); PutBigEndian((ulong)count, 2); }
            else { Put(code32); PutBigEndian((ulong)count, 4); }
        }

        void PutBigEndian(ulong value, int size)
        {
            Reserve(size);
            for (int i = size - 1; i >= 0; i--) _buffer[_length++] = (byte)(value >> (8 * i));
        }

        void PutBytes(byte[] bytes)
        {
            Reserve(bytes.Length);
            Buffer.BlockCopy(bytes, 0, _buffer, _length, bytes.Length);
            _length += bytes.Length;
        }

        void Put(byte b)
        {
            Reserve(1);
            _buffer[_length++] = b;
        }

        void Reserve(int extra)
        {
            if (_length + extra <= _buffer.Length) return;
            var grown = new byte[Math.Max(_buffer.Length * 2, _length + extra)];
            Buffer.BlockCopy(_buffer, 0, grown, 0, _length);
            _buffer = grown;
        }
    }
}
