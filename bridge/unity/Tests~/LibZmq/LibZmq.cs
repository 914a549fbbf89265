using System;
using System.Runtime.InteropServices;

namespace StreamVideo.Tests.LibZmq
{
    /// <summary>P/Invoke declarations for the parts of libzmq 4.x (libzmq.so.5) the test transport uses.</summary>
    static class LibZmq
    {
        const string Library = "libzmq.so.5";

        public const int SUB = 2, DEALER = 5;
        public const int DONTWAIT = 1, SNDMORE = 2;
        public const int SUBSCRIBE = 6, UNSUBSCRIBE = 7, RCVMORE = 13, LINGER = 17, MAXMSGSIZE = 22,
                         RCVHWM = 24, RCVTIMEO = 27, SNDTIMEO = 28, CURVE_PUBLICKEY = 48, CURVE_SECRETKEY = 49,
                         CURVE_SERVERKEY = 50, HEARTBEAT_IVL = 75, HEARTBEAT_TTL = 76, HEARTBEAT_TIMEOUT = 77;
        public const int EAGAIN = 11, EINTR = 4;
        /// <summary>sizeof(zmq_msg_t) is 64 bytes in libzmq 4.x.</summary>
        public const int MessageSize = 64;

        [DllImport(Library)] public static extern IntPtr zmq_ctx_new();
        [DllImport(Library)] public static extern int zmq_ctx_term(IntPtr context);
        [DllImport(Library)] public static extern IntPtr zmq_socket(IntPtr context, int type);
        [DllImport(Library)] public static extern int zmq_close(IntPtr socket);
        [DllImport(Library)] public static extern int zmq_connect(IntPtr socket, string endpoint);
        [DllImport(Library)] public static extern int zmq_setsockopt(IntPtr socket, int option, byte[] value, UIntPtr size);
        [DllImport(Library)] public static extern int zmq_setsockopt(IntPtr socket, int option, ref int value, UIntPtr size);
        [DllImport(Library)] public static extern int zmq_setsockopt(IntPtr socket, int option, ref long value, UIntPtr size);
        [DllImport(Library)] public static extern int zmq_getsockopt(IntPtr socket, int option, ref int value, ref UIntPtr size);
        [DllImport(Library)] public static extern int zmq_send(IntPtr socket, byte[] buffer, UIntPtr length, int flags);
        [DllImport(Library)] public static extern int zmq_msg_init(IntPtr message);
        [DllImport(Library)] public static extern int zmq_msg_recv(IntPtr message, IntPtr socket, int flags);
        [DllImport(Library)] public static extern IntPtr zmq_msg_data(IntPtr message);
        [DllImport(Library)] public static extern UIntPtr zmq_msg_size(IntPtr message);
        [DllImport(Library)] public static extern int zmq_msg_close(IntPtr message);
        [DllImport(Library)] public static extern int zmq_errno();
        [DllImport(Library)] public static extern IntPtr zmq_strerror(int errnum);

        public static string LastError()
        {
            int errno = zmq_errno();
            return Marshal.PtrToStringAnsi(zmq_strerror(errno)) + " (errno " + errno + ")";
        }
    }
}
