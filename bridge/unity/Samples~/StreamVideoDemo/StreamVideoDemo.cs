using System.IO;
using System.Linq;
using StreamVideo.Client;
using StreamVideo.Input;
using StreamVideo.NetMq;
using StreamVideo.Protocol;
using StreamVideo.Transport;
using StreamVideo.Unity;
using UnityEngine;
using UnityEngine.UI;

namespace StreamVideo.Samples
{
    /// <summary>
    /// Streams a streamvideo session: frames onto a RawImage and/or a renderer's material, the keyboard mapped
    /// to the model's actions (arrows / WASD, space, shift, E, Q, 1-9, as in `streamvideo play`), and a prompt
    /// box at the bottom of the screen (Enter sends it). All networking runs on StreamVideoWorker's thread;
    /// this component only moves keys in and frames out.
    /// </summary>
    public sealed class StreamVideoDemo : MonoBehaviour
    {
        [Header("Server (streamvideo serve)")]
        [SerializeField] string controlEndpoint = "tcp://127.0.0.1:5555";
        [Tooltip("CURVE (optional): path of the server's public certificate, server.key")]
        [SerializeField] string serverKeyFile = "";
        [Tooltip("CURVE (optional): path of this client's secret certificate, NAME.key_secret")]
        [SerializeField] string clientKeyFile = "";

        [Header("Session")]
        [Tooltip("Empty: the server's default model")]
        [SerializeField] string model = "";
        [SerializeField] string prompt = "a grassy meadow";
        [SerializeField] long seed;
        [Tooltip("raw on the same machine, jpeg over a network")]
        [SerializeField] string encoding = "raw";
        [Tooltip("Frames per second to generate; 0 = the model's own rate")]
        [SerializeField] float fps;

        [Header("View (either or both)")]
        [SerializeField] RawImage view;
        [SerializeField] Renderer screen;

        StreamVideoWorker _worker;
        FrameQueue _frames;
        FrameTexture _texture;
        KeyMap _keyMap;
        readonly KeyboardKeys _keys = new KeyboardKeys();
        string _promptDraft;

        void OnEnable()
        {
            NetMqTransport.Initialize();
            _frames = new FrameQueue(32);
            _texture = new FrameTexture();
            _promptDraft = prompt;
            var options = new ClientOptions { ControlEndpoint = controlEndpoint, Curve = LoadCurve() };
            var open = new OpenOptions { Model = model == "" ? null : model, Prompt = prompt, Seed = seed, Encoding = encoding };
            _worker = new StreamVideoWorker(NetMqTransport.Create, options, open, fps > 0 ? fps : (double?)null, _frames);
            _worker.Start();
        }

        void Update()
        {
            var session = _worker.Session;
            if (session == null) return;
            if (_keyMap == null) _keyMap = new KeyMap(session.ActionSpace);
            if (GUIUtility.keyboardControl != 0) _keys.Clear(); // typing a prompt: keys are text, not actions
            else _keys.Poll(_keyMap.Keys);
            _worker.SetAction(_keyMap.ActionFor(_keys.Held));

            VideoFrame frame;
            if (!_frames.TryTake(Time.realtimeSinceStartupAsDouble, session.Fps, out frame)) return;
            _texture.Upload(frame);
            var uv = _texture.UvRect;
            if (view != null)
            {
                view.texture = _texture.Texture;
                view.uvRect = uv;
            }
            if (screen != null)
            {
                screen.material.mainTexture = _texture.Texture;
                screen.material.mainTextureScale = new Vector2(uv.width, uv.height);
                screen.material.mainTextureOffset = new Vector2(uv.x, uv.y);
            }
        }

        void OnGUI()
        {
            var box = new Rect(10, Screen.height - 60, Screen.width - 20, 24);
            if (Event.current.type == EventType.KeyDown && Event.current.keyCode == KeyCode.Return && _promptDraft.Trim() != "")
            {
                _worker.SetPrompt(_promptDraft);
                GUIUtility.keyboardControl = 0;
                Event.current.Use();
            }
            _promptDraft = GUI.TextField(box, _promptDraft);
            var session = _worker.Session;
            string status = _worker.Status + (session == null ? "" : string.Format(
                " | {0} {1}x{2} | chunk {3} | {4} | dropped {5}", session.Model, session.Width, session.Height,
                _worker.LastChunkIndex, _keyMap == null ? "" : _keyMap.ActionFor(_keys.Held).ToString(), _frames.Dropped));
            GUI.Label(new Rect(10, Screen.height - 32, Screen.width - 20, 24), status);
            if (_keyMap == null) return;
            var help = string.Join("   ", _keyMap.Bindings.Select(b => b.Key + ": " + b.Meaning).ToArray());
            GUI.Label(new Rect(10, 10, Screen.width - 20, 48), help);
        }

        void OnDisable()
        {
            _worker.Dispose();        // bounded: stops the thread, closes the session, disposes the sockets
            NetMqTransport.Cleanup(); // after every socket is disposed, never blocking
            _texture.Dispose();
            _keyMap = null;
        }

        CurveKeys LoadCurve()
        {
            if (serverKeyFile == "" && clientKeyFile == "") return null;
            if (!File.Exists(serverKeyFile) || !File.Exists(clientKeyFile))
                throw new FileNotFoundException("CURVE needs both server.key and NAME.key_secret: " + serverKeyFile + ", " + clientKeyFile);
            return CurveKeys.FromCertificateFiles(serverKeyFile, clientKeyFile);
        }
    }
}
