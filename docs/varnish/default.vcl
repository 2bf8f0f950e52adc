vcl 4.1;

# Varnish in front of a Fastify app that runs fastify-ember-cache with
# `edge: { tagHeader: 'xkey', purgers: varnishPurgers({ servers: [...] }) }`.
# Needs vmod-xkey (Debian: varnish-modules). Tested with Varnish 7.1 in test/edge-varnish.test.ts.
import std;
import xkey;

# The app. The test harness rewrites these two lines.
backend default {
  .host = "127.0.0.1";
  .port = "3000";
}

# Who may purge: the app's hosts. Purges from anywhere else are refused.
acl purgers {
  "127.0.0.1";
  "::1";
}

sub vcl_recv {
  if (req.method == "PURGE") {
    if (client.ip !~ purgers) {
      return (synth(403, "Forbidden"));
    }
    # xkey-purge: tag tag ... drops every object carrying one of them; xkey-softpurge marks
    # them stale (served within grace while one fetch refreshes them).
    if (req.http.xkey-purge) {
      set req.http.x-purged = xkey.purge(req.http.xkey-purge);
    } else if (req.http.xkey-softpurge) {
      set req.http.x-purged = xkey.softpurge(req.http.xkey-softpurge);
    } else {
      return (synth(400, "xkey-purge or xkey-softpurge required"));
    }
    return (synth(200, "Purged " + req.http.x-purged));
  }
  if (req.method == "BAN") {
    if (client.ip !~ purgers) {
      return (synth(403, "Forbidden"));
    }
    # clear(): everything.
    ban("obj.status != 0");
    return (synth(200, "Banned"));
  }
  # Then Varnish's built-in rules: requests with Cookie or Authorization are passed.
}

sub vcl_backend_response {
  # The app's edge TTL (RFC 9213 CDN-Cache-Control, from a route's edgeTtl) decides here, apart
  # from the browser's Cache-Control. Never for a response the app marked private or that sets
  # a cookie.
  if (beresp.http.CDN-Cache-Control) {
    if (beresp.http.Set-Cookie || beresp.http.Cache-Control ~ "(?i)(^|,)\s*private" || beresp.http.Vary == "*" ||
        beresp.http.CDN-Cache-Control ~ "(?i)(^|,)\s*(no-store|private)\s*(,|$)") {
      set beresp.ttl = 120s;
      set beresp.uncacheable = true;
      return (deliver);
    }
    if (beresp.http.CDN-Cache-Control ~ "(?i)max-age=\d+") {
      set beresp.ttl = std.duration(regsub(beresp.http.CDN-Cache-Control, "(?i)^.*max-age=(\d+).*$", "\1") + "s", 0s);
      set beresp.grace = 10s;
      return (deliver);
    }
  }
}

sub vcl_deliver {
  # Edge-only headers stop here: browsers never see the tags or the edge TTL.
  unset resp.http.xkey;
  unset resp.http.CDN-Cache-Control;
  if (obj.hits > 0) {
    set resp.http.X-Edge-Cache = "HIT";
  } else {
    set resp.http.X-Edge-Cache = "MISS";
  }
}
