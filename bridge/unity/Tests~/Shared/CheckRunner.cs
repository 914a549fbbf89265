using System;
using System.Diagnostics;
using System.Threading;

namespace StreamVideo.Tests
{
    /// <summary>Thrown by <see cref="CheckRunner.Expect"/> when a check's condition does not hold.</summary>
    sealed class CheckFailed : Exception
    {
        public CheckFailed(string message) : base(message) { }
    }

    /// <summary>Runs named checks, prints PASS/FAIL per check and a closing "N passed, N failed" line.</summary>
    sealed class CheckRunner
    {
        int _passed;
        int _failed;

        /// <summary>Ends the process with exit code 3 if it is still running after <paramref name="seconds"/>.</summary>
        public static void StartWatchdog(int seconds)
        {
            var watchdog = new Thread(() =>
            {
                Thread.Sleep(seconds * 1000);
                Console.WriteLine("FAIL watchdog: still running after " + seconds + " s");
                Console.Out.Flush();
                Environment.Exit(3);
            }) { IsBackground = true };
            watchdog.Start();
        }

        /// <summary>Runs <paramref name="check"/>; it returns a detail for the PASS line or throws to fail.</summary>
        public void Run(string name, Func<string> check)
        {
            var clock = Stopwatch.StartNew();
            try
            {
                string detail = check();
                _passed++;
                Console.WriteLine(string.Format("PASS {0} ({1} ms): {2}", name, clock.ElapsedMilliseconds, detail));
            }
            catch (Exception err)
            {
                _failed++;
                string reason = err is CheckFailed ? err.Message : err.GetType().Name + ": " + err.Message;
                Console.WriteLine(string.Format("FAIL {0} ({1} ms): {2}", name, clock.ElapsedMilliseconds, reason));
            }
            Console.Out.Flush();
        }

        public static void Expect(bool condition, string message)
        {
            if (!condition) throw new CheckFailed(message);
        }

        public static void ExpectEqual<T>(T expected, T actual, string what)
        {
            if (!Equals(expected, actual)) throw new CheckFailed(what + ": expected " + expected + ", got " + actual);
        }

        /// <summary>Runs <paramref name="action"/>, which must throw <typeparamref name="TException"/>; returns that exception.</summary>
        public static TException Throws<TException>(Action action, string what) where TException : Exception
        {
            try
            {
                action();
            }
            catch (TException err)
            {
                return err;
            }
            throw new CheckFailed(what + ": expected " + typeof(TException).Name + ", nothing was thrown");
        }

        /// <summary>Prints the summary; returns the process exit code (0 only if every check passed and there was one).</summary>
        public int Finish()
        {
            Console.WriteLine(_passed + " passed, " + _failed + " failed");
            return _failed == 0 && _passed > 0 ? 0 : 1;
        }
    }
}
