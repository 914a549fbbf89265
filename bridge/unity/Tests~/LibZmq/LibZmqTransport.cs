using System;
using System.Collections.Generic;
using System.Runtime.InteropServices;
using System.Text;
using StreamVideo.Transport;

namespace StreamVideo.Tests.LibZmq
{
    /// <summary>
    /// <see cref="ITransport"/> over the system's libzmq (P/Invoke), for running the engine-independent client
    /// outside Unity. Same socket options as the NetMQ transport. Owns its context: dispose it on the thread
    /// that used it.
    /// </summary>
    public sealed class LibZmqTransport : ITransport
    {
        readonly CurveKeys _curve;
        readonly IntPtr _message = Marshal.AllocHGlobal(LibZmq.MessageSize);
        IntPtr _context;
        IntPtr _dealer;
        IntPtr _sub;
        bool _disposed;

        public LibZmqTransport(string controlEndpoint, CurveKeys curve)
        {
            _curve = curve;
            _context = LibZmq.zmq_ctx_new();
            if (_context == IntPtr.Zero) throw new InvalidOperationException("zmq_ctx_new: " + LibZmq.LastError());
            try
            {
                _dealer = NewSocket(LibZmq.DEALER);
                SetLong(_dealer, LibZmq.MAXMSGSIZE, SocketSettings.MaxMessageBytes);
                Check(LibZmq.zmq_connect(_dealer, controlEndpoint), "connect " + controlEndpoint);
            }
            catch
            {
                Dispose();
                throw;
            }
        }

        public static ITransport Create(string controlEndpoint, CurveKeys curve)
        {
            return new LibZmqTransport(controlEndpoint, curve);
        }

        public bool SendControl(IList<byte[]> frames, int timeoutMs)
        {
            SetInt(_dealer, LibZmq.SNDTIMEO, timeoutMs);
            for (int i = 0; i < frames.Count; i++)
            {
                int flags = i < frames.Count - 1 ? LibZmq.SNDMORE : 0;
                while (LibZmq.zmq_send(_dealer, frames[i], (UIntPtr)frames[i].Length, flags) < 0)
                {
                    int errno = LibZmq.zmq_errno();
                    if (errno == LibZmq.EAGAIN && i == 0) return false; // nothing queued yet: the message is dropped whole
                    if (errno != LibZmq.EINTR) throw new InvalidOperationException("zmq_send: " + LibZmq.LastError());
                }
            }
            return true;
        }

        public List<byte[]> ReceiveControl(int timeoutMs)
        {
            return Receive(_dealer, timeoutMs);
        }

        public void Subscribe(string endpoint, string topic)
        {
            if (_sub == IntPtr.Zero)
            {
                _sub = NewSocket(LibZmq.SUB);
                SetInt(_sub, LibZmq.RCVHWM, SocketSettings.StreamReceiveHwm);
                SetLong(_sub, LibZmq.MAXMSGSIZE, SocketSettings.MaxMessageBytes);
                Check(LibZmq.zmq_connect(_sub, endpoint), "connect " + endpoint);
            }
            var bytes = Encoding.ASCII.GetBytes(topic);
            Check(LibZmq.zmq_setsockopt(_sub, LibZmq.SUBSCRIBE, bytes, (UIntPtr)bytes.Length), "subscribe");
        }

        public void Unsubscribe(string topic)
        {
            if (_sub == IntPtr.Zero) return;
            var bytes = Encoding.ASCII.GetBytes(topic);
            Check(LibZmq.zmq_setsockopt(_sub, LibZmq.UNSUBSCRIBE, bytes, (UIntPtr)bytes.Length), "unsubscribe");
        }

        public List<byte[]> ReceiveStream(int timeoutMs)
        {
            if (_sub == IntPtr.Zero)
            {
                System.Threading.Thread.Sleep(timeoutMs);
                return null;
            }
            return Receive(_sub, timeoutMs);
        }

        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            foreach (var socket in new[] { _dealer, _sub })
                if (socket != IntPtr.Zero) LibZmq.zmq_close(socket); // LINGER 0: returns at once, drops pending frames
            _dealer = _sub = IntPtr.Zero;
            if (_context != IntPtr.Zero) LibZmq.zmq_ctx_term(_context);
            _context = IntPtr.Zero;
            Marshal.FreeHGlobal(_message);
        }

        List<byte[]> Receive(IntPtr socket, int timeoutMs)
        {
            SetInt(socket, LibZmq.RCVTIMEO, timeoutMs);
            var frames = new List<byte[]>();
            while (true)
            {
                LibZmq.zmq_msg_init(_message);
                int size;
                while ((size = LibZmq.zmq_msg_recv(_message, socket, 0)) < 0)
                {
                    int errno = LibZmq.zmq_errno();
                    LibZmq.zmq_msg_close(_message);
                    if (errno == LibZmq.EAGAIN && frames.Count == 0) return null;
                    if (errno != LibZmq.EINTR) throw new InvalidOperationException("zmq_msg_recv: " + LibZmq.LastError());
                    LibZmq.zmq_msg_init(_message);
                }
                var frame = new byte[size];
                if (size > 0) Marshal.Copy(LibZmq.zmq_msg_data(_message), frame, 0, size);
                LibZmq.zmq_msg_close(_message);
                frames.Add(frame);
                int more = 0;
                var length = (UIntPtr)sizeof(int);
                Check(LibZmq.zmq_getsockopt(socket, LibZmq.RCVMORE, ref more, ref length), "getsockopt RCVMORE");
                if (more == 0) return frames;
            }
        }

        IntPtr NewSocket(int type)
        {
            var socket = LibZmq.zmq_socket(_context, type);
            if (socket == IntPtr.Zero) throw new InvalidOperationException("zmq_socket: " + LibZmq.LastError());
            SetInt(socket, LibZmq.LINGER, SocketSettings.LingerMs);
            SetInt(socket, LibZmq.HEARTBEAT_IVL, SocketSettings.HeartbeatIntervalMs);
            SetInt(socket, LibZmq.HEARTBEAT_TIMEOUT, SocketSettings.HeartbeatTimeoutMs);
            SetInt(socket, LibZmq.HEARTBEAT_TTL, SocketSettings.HeartbeatTtlMs);
            if (_curve != null)
            {
                SetBytes(socket, LibZmq.CURVE_SERVERKEY, _curve.ServerPublicKey);
                SetBytes(socket, LibZmq.CURVE_PUBLICKEY, _curve.ClientPublicKey);
                SetBytes(socket, LibZmq.CURVE_SECRETKEY, _curve.ClientSecretKey);
            }
            return socket;
        }

        static void SetInt(IntPtr socket, int option, int value)
        {
            Check(LibZmq.zmq_setsockopt(socket, option, ref value, (UIntPtr)sizeof(int)), "setsockopt " + option);
        }

        static void SetLong(IntPtr socket, int option, long value)
        {
            Check(LibZmq.zmq_setsockopt(socket, option, ref value, (UIntPtr)sizeof(long)), "setsockopt " + option);
        }

        static void SetBytes(IntPtr socket, int option, byte[] value)
        {
            Check(LibZmq.zmq_setsockopt(socket, option, value, (UIntPtr)value.Length), "setsockopt " + option);
        }

        static void Check(int rc, string what)
        {
            if (rc < 0) throw new InvalidOperationException(what + ": " + LibZmq.LastError());
        }
    }
}
