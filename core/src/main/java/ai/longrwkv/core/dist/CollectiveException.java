package ai.longrwkv.core.dist;

/**
 * A collective that failed or timed out: the message names the rank, the call and what to check (the other ranks'
 * output, the network, NCCL_DEBUG=INFO). Unchecked: a training command reports it as one line and exits.
 */
public final class CollectiveException extends RuntimeException {
    public CollectiveException(String message) { super(message); }

    public CollectiveException(String message, Throwable cause) { super(message, cause); }
}
