using System.Linq;
using StreamVideo.Client;
using StreamVideo.Protocol;
using StreamVideo.Tests.LibZmq;
using StreamVideo.Transport;

namespace StreamVideo.Tests.Conformance
{
    /// <summary>CURVE against a server started with --curve-keys: an authorized key works, any other key gets no answer.</summary>
    static class CurveChecks
    {
        public static void Run(CheckRunner runner, string control, string serverKey, string clientKey, string strangerKey, Expected expected)
        {
            runner.Run("curve: an authorized client key is served", () =>
            {
                var options = ControlChecks.Options(control);
                options.Curve = CurveKeys.FromCertificateFiles(serverKey, clientKey);
                using (var client = new StreamVideoClient(LibZmqTransport.Create, options))
                {
                    client.Connect();
                    var session = client.Open(new OpenOptions { Model = expected.Model, Prompt = expected.Prompt, Seed = expected.Seed });
                    var chunk = session.Step(ModelAction.Discrete(expected.Actions[0]));
                    ControlChecks.ExpectFrames(expected.EpisodeHashes[0], chunk, "chunk 0 over CURVE");
                    session.Close();
                    return "hello, open, step (frames identical) over CURVE";
                }
            });

            runner.Run("curve: an unknown client key is refused", () =>
            {
                var options = ControlChecks.Options(control);
                options.Curve = CurveKeys.FromCertificateFiles(serverKey, strangerKey);
                options.RequestTimeoutMs = 1000;
                options.Attempts = 1;
                using (var client = new StreamVideoClient(LibZmqTransport.Create, options))
                {
                    var err = CheckRunner.Throws<BridgeException>(() => client.Connect(), "hello with an unauthorized key");
                    CheckRunner.ExpectEqual(BridgeException.Timeout, err.Code, "code");
                    return err.Detail;
                }
            });
        }
    }
}
