using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using StreamVideo.MessagePack;

namespace StreamVideo.Tests.Conformance
{
    /// <summary>
    /// What the Python client saw on the same server (written by tests/bridge/test_unity_client.py as MessagePack):
    /// the hello and open replies, a seeded episode and the SHA-256 of every frame it produced.
    /// </summary>
    sealed class Expected
    {
        readonly Dictionary<string, object> _map;

        Expected(Dictionary<string, object> map)
        {
            _map = map;
        }

        public static Expected Load(string path)
        {
            return new Expected((Dictionary<string, object>)MsgPackReader.Decode(File.ReadAllBytes(path)));
        }

        public Dictionary<string, object> Hello { get { return Map("hello"); } }
        public Dictionary<string, object> Open { get { return Map("open"); } }
        public string Model { get { return (string)_map["model"]; } }
        public string Prompt { get { return (string)_map["prompt"]; } }
        public long Seed { get { return (long)_map["seed"]; } }
        public int[] Actions { get { return List("actions").Select(a => (int)(long)a).ToArray(); } }
        /// <summary>The step before which the prompt changes to <see cref="Prompt2"/>.</summary>
        public int PromptChangeAt { get { return (int)(long)_map["prompt_change_at"]; } }
        public string Prompt2 { get { return (string)_map["prompt2"]; } }
        /// <summary>An action outside the model's action space.</summary>
        public int BadAction { get { return (int)(long)_map["bad_action"]; } }
        public int JpegQuality { get { return (int)(long)_map["jpeg_quality"]; } }
        /// <summary>Per step of the episode, the SHA-256 (hex) of each frame's raw RGB bytes.</summary>
        public string[][] EpisodeHashes { get { return Hashes("episode_sha256"); } }
        /// <summary>Per chunk of a no-op rollout from the same seed, the frame hashes.</summary>
        public string[][] NoopHashes { get { return Hashes("noop_sha256"); } }
        /// <summary>SHA-256 of each JPEG file of the first no-op chunk with encoding jpeg.</summary>
        public string[] JpegHashes { get { return List("jpeg_sha256").Cast<string>().ToArray(); } }

        public static string Sha256(byte[] data)
        {
            using (var sha = SHA256.Create())
                return string.Concat(sha.ComputeHash(data).Select(b => b.ToString("x2")));
        }

        Dictionary<string, object> Map(string key) { return (Dictionary<string, object>)_map[key]; }

        List<object> List(string key) { return (List<object>)_map[key]; }

        string[][] Hashes(string key)
        {
            return List(key).Select(chunk => ((List<object>)chunk).Cast<string>().ToArray()).ToArray();
        }
    }
}
