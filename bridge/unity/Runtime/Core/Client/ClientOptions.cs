using StreamVideo.Transport;

namespace StreamVideo.Client
{
    /// <summary>How a <see cref="StreamVideoClient"/> reaches the server and how long it waits.</summary>
    public sealed class ClientOptions
    {
        /// <summary>The server's control (ROUTER) endpoint.</summary>
        public string ControlEndpoint = "tcp://127.0.0.1:5555";
        /// <summary>CURVE keys; null = plaintext (loopback only).</summary>
        public CurveKeys Curve;
        /// <summary>How long one attempt waits for its reply.</summary>
        public int RequestTimeoutMs = 5000;
        /// <summary>Sends of one request before it fails with <c>timeout</c>; resends keep the id, so the server answers once.</summary>
        public int Attempts = 2;
        /// <summary>
        /// With CURVE: how long <c>Connect</c> waits for the hello reply before failing with <c>auth_failed</c>. A CURVE
        /// handshake the server refuses (a wrong server key, an unauthorized client key) gets no reply at all (PROTOCOL.md 1.2).
        /// </summary>
        public int HandshakeTimeoutMs = 3000;
        /// <summary>Free text the server logs (<c>hello.client</c>).</summary>
        public string ClientName = "streamvideo-unity";
    }
}
