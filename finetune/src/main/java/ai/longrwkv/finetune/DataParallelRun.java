package ai.longrwkv.finetune;

import ai.longrwkv.core.backend.Backend;
import ai.longrwkv.core.backend.Backends;
import ai.longrwkv.core.dist.CollectiveException;
import ai.longrwkv.core.dist.Communicator;
import ai.longrwkv.core.dist.Rendezvous;
import ai.longrwkv.core.train.DataParallel;

import java.util.ArrayList;
import java.util.List;

/**
 * Runs a training command on one device, or data-parallel on several (--devices, --nnodes): one process per machine
 * and one worker thread per GPU in it. Threads rather than a process per GPU because the ranks of a node then share
 * one copy of the host-side model weights and of the dataset's index (a 7B .pth is 15 GB), one JVM heap, and the
 * group's id needs no inter-process hand-over inside a node; NCCL supports one thread per device in a process.
 *
 * <p>Rank = node rank x devices per node + the device's position in --devices. Rank 0 prints progress and writes the
 * outputs; a rank that fails aborts the group, so the others stop at their next collective with its reason instead
 * of waiting, and the command reports the failure that started it.
 */
public final class DataParallelRun {
    private DataParallelRun() { }

    /** One rank's work: build the model on {@code be} and train; {@code dp} null on one device. */
    public interface RankBody {
        void train(Backend be, DataParallel dp, boolean primary);
    }

    public static void run(TrainingOptions o, RankBody body) {
        if (o.worldSize() == 1) {
            try (Backend be = TrainingRun.backend(o.device)) {
                body.train(be, null, true);
            }
            return;
        }
        List<Integer> devices = o.localDevices();
        int local = devices.size();
        List<Backend> backends = new ArrayList<>();
        try {
            // every backend before any rank waits for the others: a device that cannot start fails here, alone
            for (int d : devices) backends.add(Backends.create(o.device, d));
            long timeoutMillis = o.collectiveTimeout * 1000L;
            Rendezvous.Group group = group(o, backends.get(0), local, timeoutMillis);
            int world = group.worldSize(), firstRank = group.firstRank();
            byte[] id = group.id();
            System.out.printf("data parallel: %d rank%s (%d node%s x %d device%s), ZeRO %d; this node: ranks %d..%d on %s%n",
                    world, world == 1 ? "" : "s", o.nnodes, o.nnodes == 1 ? "" : "s", local, local == 1 ? "" : "s", o.zero,
                    firstRank, firstRank + local - 1, Backends.describe(backends.get(0)).replaceFirst("^device: ", ""));
            Throwable[] failures = new Throwable[local];
            List<Thread> threads = new ArrayList<>();
            for (int i = 0; i < local; i++) {
                int slot = i, rank = firstRank + i;
                Backend be = backends.get(i);
                Thread t = new Thread(null, () -> {
                    Communicator comm = null;
                    try {
                        comm = be.communicator(id, rank, world, timeoutMillis);
                        body.train(be, new DataParallel(comm, o.zero), rank == 0);
                    } catch (Throwable e) {
                        failures[slot] = e;
                        if (comm != null) comm.abort(oneLine(e));
                    } finally {
                        if (comm != null) comm.close();
                    }
                }, "rank-" + rank, 64L << 20);
                threads.add(t);
                t.start();
            }
            for (Thread t : threads) {
                try {
                    t.join();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw new IllegalStateException("interrupted while the ranks train", e);
                }
            }
            rethrowFirstCause(failures);
        } finally {
            for (Backend be : backends) be.close();
        }
    }

    /**
     * The group: its id made by rank 0's backend (ncclGetUniqueId); on several nodes handed from node 0 to the others
     * over the --master socket ({@link Rendezvous}), which also checks that every node runs the same command.
     */
    private static Rendezvous.Group group(TrainingOptions o, Backend local0, int local, long timeoutMillis) {
        String fingerprint = o.groupFingerprint();
        if (o.nnodes == 1) return new Rendezvous.Group(local0.newCommunicatorId(), local, 0, fingerprint);
        if (o.nodeRank == 0) {
            try (Rendezvous.Master m = Rendezvous.listen(Rendezvous.parseMaster(o.master).getPort())) {
                System.out.printf("node 0: waiting for %d more node%s on port %d%n", o.nnodes - 1, o.nnodes == 2 ? "" : "s", m.port());
                return m.serve(o.nnodes, local, local0.newCommunicatorId(), fingerprint, timeoutMillis);
            }
        }
        return Rendezvous.join(o.master, o.nodeRank, o.nnodes, local, fingerprint, timeoutMillis);
    }

    /**
     * The failure that started it: a rank's own error rather than the collective errors it caused on the others
     * (the lowest rank's when several failed on their own).
     */
    private static void rethrowFirstCause(Throwable[] failures) {
        Throwable first = null;
        for (Throwable f : failures) if (f != null && !(f instanceof CollectiveException)) { first = f; break; }
        if (first == null) for (Throwable f : failures) if (f != null) { first = f; break; }
        if (first == null) return;
        if (first instanceof RuntimeException r) throw r;
        if (first instanceof Error e) throw e;
        throw new IllegalStateException(first.getMessage(), first);
    }

    private static String oneLine(Throwable e) {
        String m = e.getMessage() != null ? e.getMessage() : e.getClass().getSimpleName();
        int nl = m.indexOf('\n');
        return nl < 0 ? m : m.substring(0, nl);
    }
}
