using System;

namespace StreamVideo.Protocol
{
    /// <summary>ZeroMQ endpoint strings (<c>tcp://host:port</c>).</summary>
    public static class Endpoints
    {
        /// <summary>
        /// PROTOCOL.md section 4, <c>hello</c>: a stream endpoint bound on a wildcard host (<c>0.0.0.0</c>, <c>*</c>,
        /// <c>::</c>) is reached through the host of the control endpoint.
        /// </summary>
        public static string ReplaceWildcardHost(string endpoint, string controlEndpoint)
        {
            string host = Host(endpoint);
            if (host != "0.0.0.0" && host != "*" && host != "[::]" && host != "::") return endpoint;
            int port = endpoint.LastIndexOf(':');
            return endpoint.Substring(0, endpoint.IndexOf("://", StringComparison.Ordinal) + 3) + Host(controlEndpoint) + endpoint.Substring(port);
        }

        static string Host(string endpoint)
        {
            int scheme = endpoint.IndexOf("://", StringComparison.Ordinal);
            int port = endpoint.LastIndexOf(':');
            if (scheme < 0 || port <= scheme + 2) throw new ArgumentException("not a tcp://host:port endpoint: " + endpoint);
            return endpoint.Substring(scheme + 3, port - scheme - 3);
        }
    }
}
