package ai.longrwkv.core.dist;

import java.util.ArrayDeque;

/**
 * Queued collectives where nothing runs asynchronously (the emulated device, the tests' host group): each queued call
 * is kept and runs when it, or a later one, is awaited, or before the next call that is not queued. So a queued call
 * reads its buffers as late as a GPU's communication stream could: a caller that touches a buffer before awaiting its
 * collective gets other numbers than the unqueued run, deterministically, and the tests see it.
 */
public final class DeferredCalls {
    private record Call(long number, Runnable run) implements Communicator.Queued { }

    private final ArrayDeque<Call> calls = new ArrayDeque<>();
    private long next;

    /** Keeps {@code run} for later; the ticket to await. */
    public Communicator.Queued add(Runnable run) {
        Call c = new Call(next++, run);
        calls.addLast(c);
        return c;
    }

    /** Runs the kept calls up to and including {@code q} (null: none), oldest first. */
    public void runThrough(Communicator.Queued q) {
        if (q == null) return;
        long upTo = ((Call) q).number();
        while (!calls.isEmpty() && calls.peekFirst().number() <= upTo) calls.pollFirst().run().run();
    }

    /** Runs every kept call, oldest first. */
    public void runAll() {
        while (!calls.isEmpty()) calls.pollFirst().run().run();
    }

    /** Forgets the kept calls (the group is broken: they would fail). */
    public void clear() {
        calls.clear();
    }
}
