using System.Diagnostics;
using StreamVideo.Client;
using StreamVideo.Protocol;
using StreamVideo.Tests.LibZmq;
using StreamVideo.Transport;

namespace StreamVideo.Tests.Conformance
{
    /// <summary>
    /// CURVE against a server started with --curve-keys: an authorized key works; an unknown client key and a wrong server
    /// key get no answer, which the client turns into <c>auth_failed</c> after its handshake timeout, naming the server key.
    /// </summary>
    static class CurveChecks
    {
        const int HandshakeTimeoutMs = 1000;

        public static void Run(CheckRunner runner, string control, string serverKey, string clientKey, string strangerKey,
                               string otherServerKey, Expected expected)
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

            runner.Run("curve: an unknown client key is auth_failed within the handshake timeout",
                       () => Refused(control, CurveKeys.FromCertificateFiles(serverKey, strangerKey), "an unauthorized client key"));
            runner.Run("curve: a wrong server key is auth_failed within the handshake timeout, naming the server key",
                       () => Refused(control, CurveKeys.FromCertificateFiles(otherServerKey, clientKey), "another server's key"));
        }

        static string Refused(string control, CurveKeys keys, string what)
        {
            var options = ControlChecks.Options(control);
            options.Curve = keys;
            options.HandshakeTimeoutMs = HandshakeTimeoutMs;
            using (var client = new StreamVideoClient(LibZmqTransport.Create, options))
            {
                var clock = Stopwatch.StartNew();
                var err = CheckRunner.Throws<BridgeException>(() => client.Connect(), "hello with " + what);
                long took = clock.ElapsedMilliseconds;
                CheckRunner.ExpectEqual(BridgeException.AuthFailed, err.Code, "code");
                CheckRunner.Expect(err.Detail.Contains("server key is wrong"), "the message should name the server key: " + err.Detail);
                CheckRunner.Expect(took >= HandshakeTimeoutMs && took < HandshakeTimeoutMs + 2000,
                                   "auth_failed after " + took + " ms, expected " + HandshakeTimeoutMs + " ms and a little");
                return "auth_failed after " + took + " ms: " + err.Detail;
            }
        }
    }
}
