using System;
using System.Collections.Generic;
using System.Text;
using System.Threading;
using NetMQ;
using NetMQ.Sockets;
using StreamVideo.Transport;

namespace StreamVideo.NetMq
{
    /// <summary>
    /// <see cref="ITransport"/> on NetMQ (managed ZeroMQ): a DealerSocket for control, a SubscriberSocket for
    /// the stream, with the protocol's socket options. Compiled only when NetMQ is installed and the scripting
    /// define STREAMVIDEO_NETMQ is set (the asmdef's defineConstraints). Like every transport, use it on one
    /// thread (StreamVideoWorker's).
    /// </summary>
    public sealed class NetMqTransport : ITransport
    {
        readonly CurveKeys _curve;
        readonly DealerSocket _dealer;
        SubscriberSocket _sub;

        public NetMqTransport(string controlEndpoint, CurveKeys curve)
        {
            _curve = curve;
            _dealer = new DealerSocket();
            Configure(_dealer);
            _dealer.Connect(controlEndpoint);
        }

        /// <summary>A <see cref="TransportFactory"/>.</summary>
        public static ITransport Create(string controlEndpoint, CurveKeys curve)
        {
            return new NetMqTransport(controlEndpoint, curve);
        }

        /// <summary>Call once before the first transport: NetMQ's AsyncIO completion ports do not work on Unity's Mono.</summary>
        public static void Initialize()
        {
            AsyncIO.ForceDotNet.Force();
        }

        /// <summary>
        /// Call after every transport is disposed (OnDisable / OnApplicationQuit): ends NetMQ's background threads
        /// without waiting, so the editor does not hang on leaving play mode or reloading scripts.
        /// </summary>
        public static void Cleanup()
        {
            NetMQConfig.Cleanup(false);
        }

        public bool SendControl(IList<byte[]> frames, int timeoutMs)
        {
            return _dealer.TrySendMultipartBytes(TimeSpan.FromMilliseconds(timeoutMs), frames);
        }

        public List<byte[]> ReceiveControl(int timeoutMs)
        {
            return Receive(_dealer, timeoutMs);
        }

        public void Subscribe(string endpoint, string topic)
        {
            if (_sub == null)
            {
                _sub = new SubscriberSocket();
                Configure(_sub);
                _sub.Options.ReceiveHighWatermark = SocketSettings.StreamReceiveHwm;
                _sub.Connect(endpoint);
            }
            _sub.Subscribe(Encoding.ASCII.GetBytes(topic));
        }

        public void Unsubscribe(string topic)
        {
            if (_sub != null) _sub.Unsubscribe(Encoding.ASCII.GetBytes(topic));
        }

        public List<byte[]> ReceiveStream(int timeoutMs)
        {
            if (_sub == null)
            {
                Thread.Sleep(timeoutMs);
                return null;
            }
            return Receive(_sub, timeoutMs);
        }

        public void Dispose()
        {
            if (_sub != null) _sub.Dispose();
            _dealer.Dispose();
        }

        static List<byte[]> Receive(NetMQSocket socket, int timeoutMs)
        {
            List<byte[]> frames = null;
            return socket.TryReceiveMultipartBytes(TimeSpan.FromMilliseconds(timeoutMs), ref frames) ? frames : null;
        }

        void Configure(NetMQSocket socket)
        {
            socket.Options.Linger = TimeSpan.FromMilliseconds(SocketSettings.LingerMs);
            socket.Options.MaxMsgSize = (int)SocketSettings.MaxMessageBytes; // int or long depending on the NetMQ version
            socket.Options.HeartbeatInterval = TimeSpan.FromMilliseconds(SocketSettings.HeartbeatIntervalMs);
            socket.Options.HeartbeatTimeout = TimeSpan.FromMilliseconds(SocketSettings.HeartbeatTimeoutMs);
            socket.Options.HeartbeatTtl = TimeSpan.FromMilliseconds(SocketSettings.HeartbeatTtlMs);
            if (_curve == null) return;
            socket.Options.CurveServerKey = _curve.ServerPublicKey;
            socket.Options.CurveCertificate = new NetMQCertificate(_curve.ClientSecretKey, _curve.ClientPublicKey);
        }
    }
}
