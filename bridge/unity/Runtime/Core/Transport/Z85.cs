using System;

namespace StreamVideo.Transport
{
    /// <summary>Z85 (ZeroMQ RFC 32) decoding, the text form of CURVE keys in ZeroMQ certificate files.</summary>
    public static class Z85
    {
        const string Alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

        public static byte[] Decode(string text)
        {
            if (text.Length % 5 != 0) throw new FormatException("Z85 text length must be a multiple of 5, got " + text.Length);
            var bytes = new byte[text.Length / 5 * 4];
            for (int block = 0; block < text.Length / 5; block++)
            {
                ulong value = 0;
                for (int i = 0; i < 5; i++)
                {
                    int digit = Alphabet.IndexOf(text[block * 5 + i]);
                    if (digit < 0) throw new FormatException("'" + text[block * 5 + i] + "' is not a Z85 character");
                    value = value * 85 + (ulong)digit;
                }
                if (value > uint.MaxValue) throw new FormatException("Z85 block " + block + " is out of range");
                for (int i = 0; i < 4; i++) bytes[block * 4 + i] = (byte)(value >> (24 - 8 * i));
            }
            return bytes;
        }
    }
}
