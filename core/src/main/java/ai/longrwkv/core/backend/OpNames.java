package ai.longrwkv.core.backend;

/** Names the Backend op a caller is in, for error messages ("silu takes fp32 tensors, ..."). */
public final class OpNames {
    private OpNames() { }

    /**
     * The outermost frame of the innermost run of {@code backend}'s frames on this thread's stack: the public op the
     * model called, not the private helper that found the problem; "this op" when there is none.
     */
    public static String callerOp(Class<?> backend) {
        return StackWalker.getInstance().walk(frames -> {
            String op = "this op";
            boolean inside = false;
            for (StackWalker.StackFrame f : (Iterable<StackWalker.StackFrame>) frames::iterator) {
                boolean here = f.getClassName().equals(backend.getName());
                if (here) { op = f.getMethodName(); inside = true; } else if (inside) break;
            }
            return op;
        });
    }
}
