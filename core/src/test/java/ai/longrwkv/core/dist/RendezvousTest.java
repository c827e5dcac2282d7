package ai.longrwkv.core.dist;

import org.junit.jupiter.api.Test;

import java.net.ServerSocket;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.*;

/** The multi-node rendezvous on loopback, every node a thread of this JVM. */
class RendezvousTest {
    static final byte[] ID = new byte[128];

    static {
        for (int i = 0; i < ID.length; i++) ID[i] = (byte) (i * 7 + 1);
    }

    /** A node's group or failure. */
    record Outcome(Rendezvous.Group group, Throwable error) { }

    static int freePort() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            return s.getLocalPort();
        }
    }

    /** Starts nodes 1.. as threads (before node 0 listens: they must retry), then node 0; returns every node's outcome. */
    static List<Outcome> run(int nnodes, int[] localRanks, String[] fingerprints, int[] nodeRanks, int[] nnodesSaid, long timeout)
            throws Exception {
        int port = freePort();
        ExecutorService pool = Executors.newCachedThreadPool();
        try {
            List<Future<Outcome>> fs = new ArrayList<>();
            for (int i = 1; i < localRanks.length; i++) {
                int k = i;
                fs.add(pool.submit(() -> {
                    try {
                        return new Outcome(Rendezvous.join("127.0.0.1:" + port, nodeRanks[k], nnodesSaid[k], localRanks[k], fingerprints[k], timeout), null);
                    } catch (Throwable e) {
                        return new Outcome(null, e);
                    }
                }));
            }
            Thread.sleep(300);
            Outcome master;
            try (Rendezvous.Master m = Rendezvous.listen(port)) {
                assertEquals(port, m.port());
                master = new Outcome(m.serve(nnodes, localRanks[0], ID, fingerprints[0], timeout), null);
            } catch (Throwable e) {
                master = new Outcome(null, e);
            }
            List<Outcome> out = new ArrayList<>(List.of(master));
            for (Future<Outcome> f : fs) out.add(f.get(30, TimeUnit.SECONDS));
            return out;
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void everyNodeLearnsTheIdTheWorldSizeAndItsFirstRank() throws Exception {
        String fp = "model=rwkv.pth data=train.jsonl lr=1e-4 ctx=16384";
        // node ranks given out of order: node "2" connects first
        List<Outcome> out = run(3, new int[]{2, 2, 1}, new String[]{fp, fp, fp}, new int[]{0, 2, 1}, new int[]{3, 3, 3}, 10_000);
        for (Outcome o : out) assertNull(o.error(), String.valueOf(o.error()));
        assertEquals(0, out.get(0).group().firstRank());
        // node 0 holds ranks 0, 1; node 1 (index 2, 1 rank) rank 2; node 2 (index 1, 2 ranks) ranks 3, 4
        assertEquals(2, out.get(2).group().firstRank(), "node 1 follows node 0's 2 ranks");
        assertEquals(3, out.get(1).group().firstRank(), "node 2 follows node 1's 1 rank");
        for (Outcome o : out) {
            assertEquals(5, o.group().worldSize());
            assertArrayEquals(ID, o.group().id());
            assertEquals(fp, o.group().fingerprint());
        }
    }

    @Test
    void aDifferentFingerprintFailsEveryNodeNamingBothValues() throws Exception {
        List<Outcome> out = run(3, new int[]{1, 1, 1}, new String[]{"lr=1e-4", "lr=3e-4", "lr=1e-4"}, new int[]{0, 1, 2}, new int[]{3, 3, 3}, 10_000);
        String problem = "node 1's run differs from node 0's: node 0 has 'lr=1e-4', node 1 has 'lr=3e-4' "
                + "(every node must run the same command with the same model, data and options)";
        assertInstanceOf(IllegalArgumentException.class, out.get(0).error());
        assertEquals("node 0: " + problem, out.get(0).error().getMessage());
        assertEquals("node 1: " + problem, out.get(1).error().getMessage());
        assertEquals("node 2: " + problem, out.get(2).error().getMessage(), "a node that agrees is told too, not left waiting");
    }

    @Test
    void nodeCountAndDuplicateNodeRanksAreRefused() throws Exception {
        List<Outcome> out = run(2, new int[]{1, 1}, new String[]{"a", "a"}, new int[]{0, 1}, new int[]{2, 3}, 10_000);
        assertEquals("node 0: node 1 (" , out.get(0).error().getMessage().substring(0, 16));
        assertTrue(out.get(0).error().getMessage().endsWith("was started with --nnodes 3, node 0 with --nnodes 2"), out.get(0).error().getMessage());
        out = run(3, new int[]{1, 1, 1}, new String[]{"a", "a", "a"}, new int[]{0, 1, 1}, new int[]{3, 3, 3}, 10_000);
        assertEquals("node 0: two nodes were started with --node-rank 1 (each node needs its own)", out.get(0).error().getMessage());
        assertEquals("node 1: two nodes were started with --node-rank 1 (each node needs its own)", out.get(1).error().getMessage());
    }

    @Test
    void theMasterTimesOutNamingTheMissingNodeAndTellsTheOthers() throws Exception {
        List<Outcome> out = run(3, new int[]{1, 1}, new String[]{"a", "a"}, new int[]{0, 1}, new int[]{3, 3}, 800);
        Throwable e = out.get(0).error();
        assertInstanceOf(CollectiveException.class, e);
        assertTrue(e.getMessage().matches("node 0: node 2 did not connect to the master port \\d+ in 0.8 s \\(2 of 3 nodes did, node 0 included\\): "
                + "is it started, with --master pointing at this machine, and is the port open\\?"), e.getMessage());
        assertInstanceOf(CollectiveException.class, out.get(1).error());
        assertEquals("node 1: the master gave up: " + e.getMessage(), out.get(1).error().getMessage());
    }

    @Test
    void aNodeWithoutMasterTimesOutWithTheAddress() throws Exception {
        int port = freePort();
        long start = System.nanoTime();
        CollectiveException e = assertThrows(CollectiveException.class, () -> Rendezvous.join("127.0.0.1:" + port, 1, 2, 1, "a", 600));
        assertTrue(e.getMessage().startsWith("node 1: no answer from the master 127.0.0.1:" + port + " in 0.6 s: is node 0 running and the port open?"),
                e.getMessage());
        assertTrue((System.nanoTime() - start) / 1e9 < 5);
    }

    @Test
    void masterAddressesAreParsedWithOneClearError() {
        assertEquals(29500, Rendezvous.parseMaster("10.0.0.1:29500").getPort());
        assertEquals("10.0.0.1", Rendezvous.parseMaster("10.0.0.1:29500").getHostString());
        assertEquals("::1", Rendezvous.parseMaster("[::1]:29500").getHostString());
        for (String bad : new String[]{"10.0.0.1", "10.0.0.1:", ":29500", "host:http", "host:70000"}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Rendezvous.parseMaster(bad));
            assertEquals("--master must be ADDR:PORT (the address of node 0 and a free TCP port, e.g. 10.0.0.1:29500), got '" + bad + "'", e.getMessage());
        }
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Rendezvous.join("h:1", 0, 2, 1, "a", 100));
        assertEquals("--node-rank must be in 1..1 on the other nodes, got 0", e.getMessage());
    }
}
