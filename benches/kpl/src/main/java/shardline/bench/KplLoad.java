package shardline.bench;

import com.amazonaws.auth.AWSStaticCredentialsProvider;
import com.amazonaws.auth.BasicAWSCredentials;
import com.amazonaws.services.kinesis.producer.KinesisProducer;
import com.amazonaws.services.kinesis.producer.KinesisProducerConfiguration;
import com.amazonaws.services.kinesis.producer.UserRecordResult;
import com.google.common.util.concurrent.FutureCallback;
import com.google.common.util.concurrent.Futures;
import com.google.common.util.concurrent.ListenableFuture;
import com.google.common.util.concurrent.MoreExecutors;
import java.nio.ByteBuffer;
import java.util.Locale;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.LongAccumulator;

/**
 * Drives the Java KPL against the Shardline emulator's HTTPS port with the
 * workload of {@code shardline-load}: N records of S bytes, keys round-robin
 * from a pool of distinct 36-character UUID-shaped keys (the same keys), all
 * built before the clock starts. Without --rate it sends as fast as the KPL
 * takes records, holding at most --max-outstanding records in flight (the
 * KPL has no buffer cap of its own; this is the usual back-pressure loop from
 * its samples). Prints one JSON line.
 *
 * <p>Args: --port P --stream s --record-size 100 --records N [--seconds S]
 * [--rate R] [--keys 4096] [--max-outstanding 1000000] [--label L]
 * [--ttl-ms 30000] [--progress-ms 0] [--rate-limit 150 (percent of the shard quota)]
 * [--sts-port P (default: --port)]
 */
public final class KplLoad {
  public static void main(String[] argv) throws Exception {
    int port = 0;
    int stsPort = 0;
    String host = "127.0.0.1";
    String stream = "s";
    int recordSize = 100;
    long records = 1_000_000;
    double seconds = 0;
    double rate = 0;
    int keyCount = 4096;
    long maxOutstanding = 1_000_000;
    long ttlMs = 30_000;
    long progressMs = 0;
    long rateLimit = 150;
    String label = "";
    for (int i = 0; i < argv.length; i += 2) {
      String v = argv[i + 1];
      switch (argv[i]) {
        case "--port": port = Integer.parseInt(v); break;
        case "--sts-port": stsPort = Integer.parseInt(v); break;
        case "--host": host = v; break;
        case "--stream": stream = v; break;
        case "--record-size": recordSize = Integer.parseInt(v); break;
        case "--records": records = Long.parseLong(v); break;
        case "--seconds": seconds = Double.parseDouble(v); break;
        case "--rate": rate = Double.parseDouble(v); break;
        case "--keys": keyCount = Integer.parseInt(v); break;
        case "--max-outstanding": maxOutstanding = Long.parseLong(v); break;
        case "--ttl-ms": ttlMs = Long.parseLong(v); break;
        case "--progress-ms": progressMs = Long.parseLong(v); break;
        case "--label": label = v; break;
        case "--rate-limit": rateLimit = Long.parseLong(v); break;
        default: throw new IllegalArgumentException("unknown option " + argv[i]);
      }
    }

    KinesisProducerConfiguration cfg = new KinesisProducerConfiguration()
        .setKinesisEndpoint(host)
        .setKinesisPort(port)
        .setVerifyCertificate(false)
        // The KPL asks STS for the account at start and its daemon dies if
        // that fails: the emulator answers GetCallerIdentity. --sts-port
        // keeps STS alive when --port is a dead endpoint on purpose.
        .setStsEndpoint(host)
        .setStsPort(stsPort > 0 ? stsPort : port)
        .setCloudwatchEndpoint(host)
        .setCloudwatchPort(port)
        .setMetricsLevel("none")
        .setRegion("us-east-1")
        .setRecordTtl(ttlMs)
        .setLogLevel(System.getenv().getOrDefault("KPL_LOG_LEVEL", "warning"))
        .setRateLimit(rateLimit)
        .setThreadingModel(System.getenv().getOrDefault("KPL_THREADING_MODEL", "POOLED"))
        .setCredentialsProvider(
            new AWSStaticCredentialsProvider(new BasicAWSCredentials("x", "y")));

    String[] keys = Keys.make(keyCount);
    byte[] payload = new byte[recordSize];
    for (int i = 0; i < recordSize; i++) {
      payload[i] = (byte) ('a' + (i % 26));
    }

    KinesisProducer kpl = new KinesisProducer(cfg);
    AtomicLong ok = new AtomicLong();
    AtomicLong failed = new AtomicLong();
    AtomicLong lastDone = new AtomicLong();
    Histogram latency = new Histogram();
    boolean wantLatency = rate > 0;

    final long start = System.nanoTime();
    long deadline = seconds > 0 ? start + (long) (seconds * 1e9) : Long.MAX_VALUE;
    long sent = 0;
    Thread progress = null;
    if (progressMs > 0) {
      final long every = progressMs;
      progress = new Thread(() -> {
        try {
          while (true) {
            Thread.sleep(every);
            System.err.printf(Locale.ROOT, "{\"t\":%.3f,\"ok\":%d,\"failed\":%d,\"outstanding\":%d}%n",
                (System.nanoTime() - start) / 1e9, ok.get(), failed.get(), kpl.getOutstandingRecordsCount());
          }
        } catch (InterruptedException e) {
          // done
        }
      });
      progress.setDaemon(true);
      progress.start();
    }
    while (true) {
      if (seconds > 0) {
        if ((sent & 255) == 0 && System.nanoTime() >= deadline) break;
      } else if (sent >= records) {
        break;
      }
      if (rate > 0) {
        long due = start + (long) (sent / rate * 1e9);
        long wait = due - System.nanoTime();
        if (wait > 0) Thread.sleep(wait / 1_000_000, (int) (wait % 1_000_000));
      }
      while (kpl.getOutstandingRecordsCount() >= maxOutstanding) {
        Thread.sleep(1);
      }
      final long sentAt = System.nanoTime();
      ListenableFuture<UserRecordResult> f =
          kpl.addUserRecord(stream, keys[(int) (sent % keys.length)], ByteBuffer.wrap(payload));
      Futures.addCallback(f, new FutureCallback<UserRecordResult>() {
        @Override public void onSuccess(UserRecordResult r) {
          long now = System.nanoTime();
          if (r.isSuccessful()) ok.incrementAndGet(); else failed.incrementAndGet();
          lastDone.accumulateAndGet(now - start, Math::max);
          if (wantLatency) latency.record((now - sentAt) / 1000);
        }
        @Override public void onFailure(Throwable t) {
          long now = System.nanoTime();
          failed.incrementAndGet();
          lastDone.accumulateAndGet(now - start, Math::max);
        }
      }, MoreExecutors.directExecutor());
      sent++;
    }
    long sendDone = System.nanoTime() - start;
    kpl.flushSync();
    // flushSync returns when the KPL has no outstanding records; callbacks
    // run right after on its callback threads.
    long waitUntil = System.nanoTime() + 10_000_000_000L;
    while (ok.get() + failed.get() < sent && System.nanoTime() < waitUntil) Thread.sleep(1);
    double wall = Math.max(lastDone.get(), sendDone) / 1e9;
    if (progress != null) progress.interrupt();
    kpl.destroy();

    StringBuilder out = new StringBuilder();
    out.append(String.format(Locale.ROOT,
        "{\"harness\":\"kpl\",\"label\":\"%s\",\"record_size\":%d,\"keys\":%d,\"target_rate\":%s,"
            + "\"sent\":%d,\"delivered\":%d,\"failed\":%d,\"wall_s\":%.6f,\"send_s\":%.6f,"
            + "\"records_per_s\":%.1f,\"mb_per_s\":%.3f",
        label, recordSize, keyCount, rate, sent, ok.get(), failed.get(), wall, sendDone / 1e9,
        ok.get() / wall, ok.get() * (double) recordSize / wall / 1e6));
    if (wantLatency) {
      out.append(String.format(Locale.ROOT,
          ",\"latency_us_p50\":%d,\"latency_us_p99\":%d,\"latency_us_max\":%d",
          latency.quantile(0.5), latency.quantile(0.99), latency.max()));
    }
    out.append("}");
    System.out.println(out);
    System.exit(0);
  }

  /** Same keys as shardline_benches::make_keys. */
  static final class Keys {
    static String[] make(int n) {
      n = Math.max(1, n);
      String[] keys = new String[n];
      long state = 0x9E3779B97F4A7C15L;
      for (int i = 0; i < n; i++) {
        state = state * 6364136223846793005L + 1442695040888963407L;
        long a = state;
        long b = Long.rotateLeft(state, 29) ^ i;
        String hex = String.format("%016x%016x", a, b);
        keys[i] = hex.substring(0, 8) + "-" + hex.substring(8, 12) + "-" + hex.substring(12, 16)
            + "-" + hex.substring(16, 20) + "-" + hex.substring(20, 32);
      }
      return keys;
    }
  }

  /** Log-bucketed microsecond histogram (1% resolution), thread-safe enough for counts. */
  static final class Histogram {
    private final java.util.concurrent.atomic.AtomicLongArray buckets =
        new java.util.concurrent.atomic.AtomicLongArray(4000);
    private final LongAccumulator max = new LongAccumulator(Math::max, 0);
    private final AtomicLong count = new AtomicLong();

    private static int bucket(long v) {
      return (int) Math.min(3999, Math.round(Math.log(Math.max(1, v)) / Math.log(1.01)));
    }

    void record(long micros) {
      buckets.incrementAndGet(bucket(micros));
      max.accumulate(micros);
      count.incrementAndGet();
    }

    long quantile(double q) {
      long target = (long) Math.ceil(q * count.get());
      long seen = 0;
      for (int i = 0; i < 4000; i++) {
        seen += buckets.get(i);
        if (seen >= target && seen > 0) return Math.round(Math.pow(1.01, i));
      }
      return max.get();
    }

    long max() {
      return max.get();
    }
  }
}
