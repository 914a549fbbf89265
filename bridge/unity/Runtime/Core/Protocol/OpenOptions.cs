using System.Collections.Generic;

namespace StreamVideo.Protocol
{
    /// <summary>Fields of an <c>open</c> request; null fields are left out and take the server's defaults.</summary>
    public sealed class OpenOptions
    {
        public string Model;
        public string Prompt;
        public long? Seed;
        /// <summary><c>diagonal</c> | <c>self_forcing</c> | <c>hierarchical</c>.</summary>
        public string Mode;
        /// <summary>Denoising steps per chunk, e.g. <c>"4322222"</c>.</summary>
        public string Schedule;
        /// <summary><c>raw</c> (loopback) | <c>jpeg</c> (remote links).</summary>
        public string Encoding;
        /// <summary>JPEG quality, 1..95.</summary>
        public int? Quality;

        public Dictionary<string, object> ToFields()
        {
            var fields = new Dictionary<string, object>();
            if (Model != null) fields["model"] = Model;
            if (Prompt != null) fields["prompt"] = Prompt;
            if (Seed.HasValue) fields["seed"] = Seed.Value;
            if (Mode != null) fields["mode"] = Mode;
            if (Schedule != null) fields["schedule"] = Schedule;
            if (Encoding != null) fields["encoding"] = Encoding;
            if (Quality.HasValue) fields["quality"] = Quality.Value;
            return fields;
        }
    }
}
