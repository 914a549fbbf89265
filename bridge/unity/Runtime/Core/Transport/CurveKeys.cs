using System;
using System.IO;

namespace StreamVideo.Transport
{
    /// <summary>
    /// CURVE keys of a client (PROTOCOL.md section 1.2): the server's public key and the client's own key pair,
    /// 32 bytes each. The server is always the CURVE server and authenticates clients by public key.
    /// </summary>
    public sealed class CurveKeys
    {
        public CurveKeys(byte[] serverPublicKey, byte[] clientPublicKey, byte[] clientSecretKey)
        {
            ServerPublicKey = Check(serverPublicKey, "server public key");
            ClientPublicKey = Check(clientPublicKey, "client public key");
            ClientSecretKey = Check(clientSecretKey, "client secret key");
        }

        public byte[] ServerPublicKey { get; private set; }
        public byte[] ClientPublicKey { get; private set; }
        public byte[] ClientSecretKey { get; private set; }

        /// <summary>
        /// Reads ZeroMQ certificate files (as <c>python -m streamvideo.bridge.keys</c> writes them): the server's
        /// public certificate (<c>server.key</c>) and the client's secret certificate (<c>NAME.key_secret</c>).
        /// </summary>
        public static CurveKeys FromCertificateFiles(string serverCertificate, string clientSecretCertificate)
        {
            string client = File.ReadAllText(clientSecretCertificate);
            return new CurveKeys(Z85.Decode(Field(File.ReadAllText(serverCertificate), "public-key", serverCertificate)),
                                 Z85.Decode(Field(client, "public-key", clientSecretCertificate)),
                                 Z85.Decode(Field(client, "secret-key", clientSecretCertificate)));
        }

        static string Field(string certificate, string name, string path)
        {
            foreach (var rawLine in certificate.Split('\n'))
            {
                var line = rawLine.Trim();
                if (!line.StartsWith(name, StringComparison.Ordinal)) continue;
                int open = line.IndexOf('"'), close = line.LastIndexOf('"');
                if (open >= 0 && close > open) return line.Substring(open + 1, close - open - 1);
            }
            throw new FormatException(path + " has no " + name + " (expected a ZeroMQ certificate file)");
        }

        static byte[] Check(byte[] key, string what)
        {
            if (key == null || key.Length != 32) throw new ArgumentException(what + " must be 32 bytes");
            return key;
        }
    }
}
