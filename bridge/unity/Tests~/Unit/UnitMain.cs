using System;
using System.Collections.Generic;
using System.IO;
using StreamVideo.MessagePack;

namespace StreamVideo.Tests.Unit
{
    /// <summary>
    /// Server-less checks of the engine-independent core. Usage: <c>mono unit.exe FIXTURE.msgpack</c>, where the
    /// fixture comes from tests/bridge/test_unity_client.py (msgpack-python output, pyzmq Z85 keys, certificate files).
    /// </summary>
    static class UnitMain
    {
        static int Main(string[] args)
        {
            if (args.Length != 1)
            {
                Console.Error.WriteLine("usage: unit.exe FIXTURE.msgpack");
                return 2;
            }
            CheckRunner.StartWatchdog(60);
            var fixture = (Dictionary<string, object>)MsgPackReader.Decode(File.ReadAllBytes(args[0]));
            var runner = new CheckRunner();
            CodecChecks.Run(runner, fixture);
            CoreChecks.Run(runner, fixture);
            return runner.Finish();
        }
    }
}
