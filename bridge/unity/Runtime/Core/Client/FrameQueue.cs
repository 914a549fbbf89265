using System.Collections.Generic;
using StreamVideo.Protocol;

namespace StreamVideo.Client
{
    /// <summary>
    /// Hands frames from the network thread to the main thread, paced at the video's frame rate.
    /// Bounded: when the reader falls behind, the oldest frames are dropped (latest frame wins).
    /// Thread-safe: <see cref="Push"/> on one thread, <see cref="TryTake"/> on another.
    /// </summary>
    public sealed class FrameQueue
    {
        readonly object _lock = new object();
        readonly Queue<VideoFrame> _frames = new Queue<VideoFrame>();
        readonly int _capacity;
        double _nextDue = double.NegativeInfinity;
        long _dropped;

        /// <param name="capacity">Frames held at most; two chunks' worth keeps playback smooth without lag.</param>
        public FrameQueue(int capacity)
        {
            _capacity = capacity;
        }

        /// <summary>Frames dropped because the reader fell behind.</summary>
        public long Dropped { get { lock (_lock) return _dropped; } }

        public int Count { get { lock (_lock) return _frames.Count; } }

        public void Push(Chunk chunk)
        {
            lock (_lock)
            {
                foreach (var frame in chunk.Frames) _frames.Enqueue(frame);
                while (_frames.Count > _capacity)
                {
                    _frames.Dequeue();
                    _dropped++;
                }
            }
        }

        /// <summary>
        /// The next frame if one is waiting and its time has come (<paramref name="fps"/> &lt;= 0: at once).
        /// A reader that fell behind continues from now instead of bursting to catch up.
        /// </summary>
        /// <param name="now">The caller's clock in seconds (e.g. Time.realtimeSinceStartupAsDouble).</param>
        public bool TryTake(double now, double fps, out VideoFrame frame)
        {
            lock (_lock)
            {
                frame = null;
                if (_frames.Count == 0 || now < _nextDue) return false;
                frame = _frames.Dequeue();
                double period = fps > 0 ? 1.0 / fps : 0.0;
                _nextDue = now - _nextDue > period ? now + period : _nextDue + period;
                return true;
            }
        }
    }
}
