using System;
using System.Collections.Generic;

namespace StreamVideo.Tests.Conformance
{
    /// <summary>
    /// Conformance run of the C# client against a live <c>streamvideo serve</c>:
    /// <code>
    /// mono conformance.exe --control tcp://127.0.0.1:PORT --expected EXPECTED.msgpack
    ///     [--curve-control tcp://127.0.0.1:PORT2 --server-key server.key --client-key unity.key_secret --stranger-key other.key_secret
    ///      --other-server-key another/server.key]
    /// </code>
    /// Prints PASS/FAIL per check and "N passed, N failed"; exits 0 only if all passed, within 60 s whatever happens.
    /// </summary>
    static class ConformanceMain
    {
        static readonly string[] Required = { "--control", "--expected" };
        static readonly string[] Curve = { "--curve-control", "--server-key", "--client-key", "--stranger-key", "--other-server-key" };

        static int Main(string[] argv)
        {
            var args = Parse(argv);
            if (args == null)
            {
                Console.Error.WriteLine("usage: conformance.exe --control ENDPOINT --expected FILE [--curve-control ENDPOINT --server-key FILE --client-key FILE --stranger-key FILE --other-server-key FILE]");
                return 2;
            }
            CheckRunner.StartWatchdog(60);
            var expected = Expected.Load(args["--expected"]);
            var runner = new CheckRunner();
            ControlChecks.Run(runner, args["--control"], expected);
            StreamChecks.Run(runner, args["--control"], expected);
            if (args.ContainsKey("--curve-control"))
                CurveChecks.Run(runner, args["--curve-control"], args["--server-key"], args["--client-key"], args["--stranger-key"],
                                args["--other-server-key"], expected);
            return runner.Finish();
        }

        static Dictionary<string, string> Parse(string[] argv)
        {
            var args = new Dictionary<string, string>();
            for (int i = 0; i + 1 < argv.Length; i += 2) args[argv[i]] = argv[i + 1];
            if (argv.Length % 2 != 0) return null;
            foreach (var name in Required) if (!args.ContainsKey(name)) return null;
            int curve = 0;
            foreach (var name in Curve) if (args.ContainsKey(name)) curve++;
            return curve == 0 || curve == Curve.Length ? args : null;
        }
    }
}
