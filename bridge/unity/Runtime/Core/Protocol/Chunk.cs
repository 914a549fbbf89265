using System;
using System.Collections.Generic;

namespace StreamVideo.Protocol
{
    /// <summary>
    /// One generated chunk: the <c>step</c> reply, or a message of the real-time stream
    /// (PROTOCOL.md sections 2.2 and 4).
    /// </summary>
    public sealed class Chunk
    {
        /// <summary>The chunk's index since the last reset.</summary>
        public long Index;
        /// <summary>The session's resets before this chunk: (Episode, Index) names a chunk (0 from a 1.1 server).</summary>
        public long Episode;
        /// <summary>Forward passes the chunk cost.</summary>
        public long Nfe;
        /// <summary>Generation time on the server.</summary>
        public double Seconds;
        /// <summary>The prompt the chunk was generated under.</summary>
        public string Prompt;
        /// <summary>Server unix time of publication; stream messages only, NaN for <c>step</c> replies.</summary>
        public double Time = double.NaN;
        /// <summary>The stream topic it was published under (<see cref="SessionInfo.Topic"/>); stream messages only, null for <c>step</c> replies.</summary>
        public string Topic;
        public VideoFrame[] Frames;

        /// <summary>Decodes a step reply or stream header; <paramref name="buffers"/> are the frames after the header.</summary>
        public static Chunk FromReply(IDictionary<string, object> header, IList<byte[]> buffers)
        {
            var chunk = new Chunk
            {
                Index = Fields.Long(header, "index"),
                Nfe = Fields.Long(header, "nfe"),
                Seconds = Fields.Double(header, "seconds"),
                Prompt = Fields.String(header, "prompt"),
                Frames = DecodeFrames(Fields.Map(header, "frames"), buffers),
            };
            if (Fields.Has(header, "time")) chunk.Time = Fields.Double(header, "time");
            if (Fields.Has(header, "episode")) chunk.Episode = Fields.Long(header, "episode");
            for (int t = 0; t < chunk.Frames.Length; t++) chunk.Frames[t].ChunkIndex = chunk.Index;
            return chunk;
        }

        static VideoFrame[] DecodeFrames(IDictionary<string, object> map, IList<byte[]> buffers)
        {
            string encoding = Fields.String(map, "encoding");
            var shape = Fields.Ints(map, "shape");
            if (shape.Length != 4 || shape[3] != 3 || Fields.String(map, "dtype") != "uint8")
                throw new BridgeException(BridgeException.BadReply, "frames must be uint8 [T, H, W, 3], got shape [" + string.Join(", ", shape) + "]");
            int count = shape[0], height = shape[1], width = shape[2];
            int first = Fields.Int(map, "buffer");
            int buffersUsed = encoding == "raw" ? 1 : count;
            if (encoding != "raw" && encoding != "jpeg")
                throw new BridgeException(BridgeException.BadReply, "unknown frame encoding '" + encoding + "', expected raw or jpeg");
            if (first < 1 || first - 1 + buffersUsed > buffers.Count)
                throw new BridgeException(BridgeException.BadReply, "frames.buffer " + first + " with " + buffersUsed + " frame(s) is outside the " + buffers.Count + " buffer(s) received");

            var frames = new VideoFrame[count];
            int frameBytes = height * width * 3;
            if (encoding == "raw")
            {
                var data = buffers[first - 1];
                if (data.Length != (long)count * frameBytes)
                    throw new BridgeException(BridgeException.BadReply, "raw frames hold " + data.Length + " bytes, shape needs " + (long)count * frameBytes);
                for (int t = 0; t < count; t++)
                {
                    var pixels = new byte[frameBytes];
                    Buffer.BlockCopy(data, t * frameBytes, pixels, 0, frameBytes);
                    frames[t] = new VideoFrame(width, height, false, pixels, t);
                }
            }
            else
            {
                for (int t = 0; t < count; t++) frames[t] = new VideoFrame(width, height, true, buffers[first - 1 + t], t);
            }
            return frames;
        }
    }

    /// <summary>One video frame: raw RGB24 (rows top to bottom) or one JPEG image.</summary>
    public sealed class VideoFrame
    {
        public VideoFrame(int width, int height, bool isJpeg, byte[] data, int indexInChunk)
        {
            Width = width;
            Height = height;
            IsJpeg = isJpeg;
            Data = data;
            IndexInChunk = indexInChunk;
        }

        public int Width { get; private set; }
        public int Height { get; private set; }
        /// <summary>False: <see cref="Data"/> is Width*Height*3 bytes of RGB, first row = top. True: a JPEG file.</summary>
        public bool IsJpeg { get; private set; }
        public byte[] Data { get; private set; }
        public long ChunkIndex { get; internal set; }
        public int IndexInChunk { get; private set; }
    }
}
