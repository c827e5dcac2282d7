package ai.longrwkv.core.backend.cuda;

import ai.longrwkv.core.backend.Tensor;
import ai.longrwkv.core.dist.CollectiveException;
import ai.longrwkv.core.dist.Communicator;
import ai.longrwkv.core.tensor.DType;
import ai.longrwkv.core.tensor.HostTensor;
import org.junit.jupiter.api.Test;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static ai.longrwkv.core.backend.cuda.EmulatedCollectivesTest.*;
import static org.junit.jupiter.api.Assertions.*;

/**
 * The emulated NCCL across processes, as several nodes on one machine run in CI: ranks 0 and 1 in this JVM (threads),
 * rank 2 in a child JVM that joins over the loopback hub the id carries. Every collective and dtype, checked bit for
 * bit in every process against the host's rank-order sums; then a child killed (kill -9) while the others wait: they
 * fail at once, naming its rank, instead of waiting for the timeout.
 */
class EmulatedCrossProcessTest {
    static final int SIZE = 3;

    /** The same sequence on every rank; fails (AssertionError) when a result is not the expected one. */
    static void collectives(CudaBackend b, Communicator c, int rank, int size) {
        int n = 500, m = 37;
        try (Tensor t = b.upload(new HostTensor(new int[]{n}, values(rank, n)))) {
            c.allReduceSum(t);
            assertBitEqual(rankOrderSum(size, n), b.download(t).data(), "rank " + rank + " allReduceSum");
        }
        float[] gathered = new float[size * m];
        for (int r = 0; r < size; r++) System.arraycopy(bf16Values(r, m), 0, gathered, r * m, m);
        try (Tensor in = b.upload(new HostTensor(new int[]{m}, bf16Values(rank, m)), DType.BF16); Tensor out = b.zeros(DType.BF16, size, m)) {
            c.allGather(in, out);
            assertBitEqual(gathered, b.download(out).data(), "rank " + rank + " allGather bf16");
        }
        try (Tensor t = b.upload(new HostTensor(new int[]{m}, values(rank, m)))) {
            c.broadcast(t, size - 1);
            assertBitEqual(values(size - 1, m), b.download(t).data(), "rank " + rank + " broadcast");
        }
        try (Tensor in = b.upload(new HostTensor(new int[]{size, m}, values(rank, size * m))); Tensor out = b.zeros(m)) {
            c.reduceScatterSum(in, out);
            assertBitEqual(Arrays.copyOfRange(rankOrderSum(size, size * m), rank * m, (rank + 1) * m), b.download(out).data(),
                    "rank " + rank + " reduceScatterSum");
        }
        try (Tensor t = b.upload(new HostTensor(new int[]{m}, values(rank, m)))) {
            c.reduceSum(t, 0);
            assertBitEqual(rank == 0 ? rankOrderSum(size, m) : values(rank, m), b.download(t).data(), "rank " + rank + " reduceSum");
        }
        double[] d = c.allReduceSum(new double[]{rank + 0.1, 1e-300 * rank});
        double expected0 = 0.1, expected1 = 0;
        for (int r = 1; r < size; r++) {
            expected0 += r + 0.1;
            expected1 += 1e-300 * r;
        }
        assertEquals(expected0, d[0], 0.0);
        assertEquals(expected1, d[1], 0.0);
        c.barrier();
    }

    /** The child: args = id (hex), rank, size, mode ("collectives", or "hang": one allReduce, then wait to be killed). */
    public static void main(String[] args) throws Exception {
        byte[] id = HexFormat.of().parseHex(args[0]);
        int rank = Integer.parseInt(args[1]), size = Integer.parseInt(args[2]);
        try (CudaBackend b = CudaBackend.emulated(); Communicator c = b.communicator(id, rank, size, 20_000)) {
            if (args[3].equals("hang")) {
                try (Tensor t = b.zeros(8)) {
                    c.allReduceSum(t);
                }
                System.out.println("READY");
                System.out.flush();
                Thread.sleep(60_000);
                return;
            }
            collectives(b, c, rank, size);
            System.out.println("OK rank " + rank);
        } catch (Throwable e) {
            System.out.println("FAILED rank " + rank + ": " + e);
            System.exit(1);
        }
        System.exit(0);
    }

    static Process child(byte[] id, int rank, String mode) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-Xmx512m",
                "-cp", System.getProperty("java.class.path")));
        String cache = System.getProperty("longrwkv.cuda.cache");
        if (cache != null) cmd.add("-Dlongrwkv.cuda.cache=" + cache);
        cmd.addAll(List.of(EmulatedCrossProcessTest.class.getName(), HexFormat.of().formatHex(id), Integer.toString(rank),
                Integer.toString(SIZE), mode));
        return new ProcessBuilder(cmd).redirectErrorStream(true).start();
    }

    @Test
    void ranksInAnotherProcessTakePartInEveryCollective() throws Exception {
        byte[] id = newIdHere();
        Process p = child(id, 2, "collectives");
        try {
            List<Thread> threads = new ArrayList<>();
            Throwable[] errors = new Throwable[2];
            for (int r = 0; r < 2; r++) {
                int rank = r;
                Thread t = new Thread(() -> {
                    try (CudaBackend b = CudaBackend.emulated(); Communicator c = b.communicator(id, rank, SIZE, 20_000)) {
                        collectives(b, c, rank, SIZE);
                    } catch (Throwable e) {
                        errors[rank] = e;
                    }
                });
                t.start();
                threads.add(t);
            }
            for (Thread t : threads) t.join(30_000);
            String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            for (int r = 0; r < 2; r++) assertNull(errors[r], "rank " + r + ": " + errors[r]);
            assertEquals(0, p.exitValue(), out);
            assertTrue(out.contains("OK rank 2"), out);
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    void aKilledProcessFailsTheOthersAtOnceNamingItsRank() throws Exception {
        byte[] id = newIdHere();
        Process p = child(id, 2, "hang");
        try {
            Throwable[] errors = new Throwable[2];
            List<Thread> threads = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                int rank = r;
                Thread t = new Thread(() -> {
                    try (CudaBackend b = CudaBackend.emulated(); Communicator c = b.communicator(id, rank, SIZE, 30_000); Tensor x = b.zeros(8)) {
                        c.allReduceSum(x);   // with the child
                        c.allReduceSum(x);   // the child never comes: it is killed
                    } catch (Throwable e) {
                        errors[rank] = e;
                    }
                });
                t.start();
                threads.add(t);
            }
            BufferedReader lines = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
            String line;
            while ((line = lines.readLine()) != null && !line.equals("READY")) { /* JVM warnings */ }
            assertEquals("READY", line);
            Thread.sleep(200);
            long killed = System.nanoTime();
            p.destroyForcibly();   // SIGKILL: no goodbye
            for (Thread t : threads) t.join(20_000);
            double seconds = (System.nanoTime() - killed) / 1e9;
            for (int r = 0; r < 2; r++) {
                assertInstanceOf(CollectiveException.class, errors[r], "rank " + r + ": " + errors[r]);
                assertEquals("rank " + r + ": allReduce #2 (fp32, 8 values): rank 2 failed: its process closed its connection to the emulated "
                        + "NCCL hub without a goodbye (it died or exited: check its output)", errors[r].getMessage());
            }
            assertTrue(seconds < 10, "the others noticed after " + seconds + " s (the timeout is 30 s)");
        } finally {
            p.destroyForcibly();
        }
    }

    @Test
    void aHubThatIsNotThereIsAClearTimeout() throws Exception {
        byte[] id = newIdHere();
        id[EmulatedNccl.key(id).length() / 2 - 1] ^= 1;   // another key: not a group of this process, so it goes to the hub
        int port;
        try (java.net.ServerSocket s = new java.net.ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress())) {
            port = s.getLocalPort();   // closed again: nobody listens there
        }
        int at = EmulatedNccl.key(id).length() / 2 + 1 + 4;
        id[at] = (byte) (port >> 8);
        id[at + 1] = (byte) port;
        try (CudaBackend b = CudaBackend.emulated()) {
            CollectiveException e = assertThrows(CollectiveException.class, () -> b.communicator(id, 1, 2, 400));
            assertEquals("rank 1: no answer from the emulated NCCL hub at 127.0.0.1:" + port + " in 0.4 s (the process that made the id "
                    + "holds the group: is it running, and has the group not started already?)", e.getMessage());
        }
    }

    @Test
    void aHubRefusesAnotherId() {
        byte[] id = newIdHere();
        id[EmulatedNccl.key(id).length() / 2 - 1] ^= 1;   // same hub address, another key
        try (CudaBackend b = CudaBackend.emulated()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> b.communicator(id, 1, 2, 2000));
            assertTrue(e.getMessage().endsWith("serves another communicator id"), e.getMessage());
        }
    }

    static byte[] newIdHere() {
        try (CudaBackend b = CudaBackend.emulated()) {
            return b.newCommunicatorId();
        }
    }
}
