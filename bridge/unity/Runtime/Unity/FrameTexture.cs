using System;
using StreamVideo.Protocol;
using UnityEngine;

namespace StreamVideo.Unity
{
    /// <summary>
    /// Uploads <see cref="VideoFrame"/>s into one reusable <see cref="Texture2D"/>. Main thread only (Unity's
    /// rule for textures): take frames from a FrameQueue in Update and upload them here.
    /// </summary>
    public sealed class FrameTexture : IDisposable
    {
        static readonly Rect Upright = new Rect(0, 0, 1, 1);
        static readonly Rect FlippedVertically = new Rect(0, 1, 1, -1);

        public Texture2D Texture { get; private set; }

        /// <summary>
        /// UV rectangle to show the texture upright (RawImage.uvRect, or a material's scale/offset): raw frames
        /// arrive top row first while Unity textures start at the bottom, so they are shown flipped; JPEG
        /// frames are decoded upright by Unity.
        /// </summary>
        public Rect UvRect { get; private set; }

        public void Upload(VideoFrame frame)
        {
            Allocate(frame.Width, frame.Height);
            if (frame.IsJpeg)
            {
                Texture.LoadImage(frame.Data, false);
                UvRect = Upright;
                return;
            }
            Texture.LoadRawTextureData(frame.Data);
            Texture.Apply(false);
            UvRect = FlippedVertically;
        }

        public void Dispose()
        {
            if (Texture != null) UnityEngine.Object.Destroy(Texture);
            Texture = null;
        }

        void Allocate(int width, int height)
        {
            if (Texture != null && Texture.width == width && Texture.height == height && Texture.format == TextureFormat.RGB24) return;
            Dispose();
            Texture = new Texture2D(width, height, TextureFormat.RGB24, false)
            {
                name = "streamvideo frame",
                wrapMode = TextureWrapMode.Clamp,
                filterMode = FilterMode.Bilinear,
            };
        }
    }
}
