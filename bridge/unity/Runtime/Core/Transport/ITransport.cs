using System;
using System.Collections.Generic;

namespace StreamVideo.Transport
{
    /// <summary>
    /// The two ZeroMQ sockets of a client (PROTOCOL.md section 1): a DEALER connected to the server's control
    /// ROUTER, and a SUB connected to its stream PUB. Not thread-safe: one thread creates, uses and disposes it
    /// (ZeroMQ sockets must not be shared between threads). Every call returns within its timeout.
    /// </summary>
    public interface ITransport : IDisposable
    {
        /// <summary>Queues one multipart control message; false if it could not be queued within <paramref name="timeoutMs"/>.</summary>
        bool SendControl(IList<byte[]> frames, int timeoutMs);

        /// <summary>The next control message (without any identity frame), or null if none came within <paramref name="timeoutMs"/>.</summary>
        List<byte[]> ReceiveControl(int timeoutMs);

        /// <summary>Connects the SUB socket to <paramref name="endpoint"/> (first call only) and subscribes to <paramref name="topic"/>.</summary>
        void Subscribe(string endpoint, string topic);

        void Unsubscribe(string topic);

        /// <summary>The next stream message <c>[topic, header, buffers...]</c>, or null if none came within <paramref name="timeoutMs"/>.</summary>
        List<byte[]> ReceiveStream(int timeoutMs);
    }

    /// <summary>Creates a transport whose DEALER is connected to <paramref name="controlEndpoint"/>; <paramref name="curve"/> null = plaintext.</summary>
    public delegate ITransport TransportFactory(string controlEndpoint, CurveKeys curve);

    /// <summary>Socket options every transport sets (PROTOCOL.md section 1.3).</summary>
    public static class SocketSettings
    {
        public const int LingerMs = 0;
        public const int HeartbeatIntervalMs = 1000;
        public const int HeartbeatTimeoutMs = 3 * HeartbeatIntervalMs;
        public const int HeartbeatTtlMs = 3 * HeartbeatIntervalMs;
        /// <summary>MAXMSGSIZE: a larger inbound frame disconnects the peer.</summary>
        public const long MaxMessageBytes = 64L << 20;
        /// <summary>RCVHWM of the SUB socket: latest-frame viewing.</summary>
        public const int StreamReceiveHwm = 2;
    }
}
