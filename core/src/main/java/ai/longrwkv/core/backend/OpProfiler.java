package ai.longrwkv.core.backend;

import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.LongAdder;

/**
 * Wraps a backend so that every operation is timed by name (wall time; CPU ops are synchronous). A dynamic proxy
 * keeps it one class for every backend, present and future.
 */
public final class OpProfiler {
    private final Map<String, LongAdder[]> stats = new ConcurrentHashMap<>();

    public Backend wrap(Backend inner) {
        return (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[]{Backend.class}, (proxy, method, args) -> {
            long t0 = System.nanoTime();
            try {
                return method.invoke(inner, args);
            } catch (InvocationTargetException e) {
                throw e.getCause();
            } finally {
                LongAdder[] s = stats.computeIfAbsent(method.getName(), k -> new LongAdder[]{new LongAdder(), new LongAdder()});
                s[0].add(System.nanoTime() - t0);
                s[1].increment();
            }
        });
    }

    public void reset() {
        stats.clear();
    }

    /** Lines "op  calls  total ms  share", largest first. */
    public List<String> report() {
        Map<Long, String> sorted = new TreeMap<>((a, b) -> Long.compare(b, a));
        long total = 0;
        for (LongAdder[] s : stats.values()) total += s[0].sum();
        for (Map.Entry<String, LongAdder[]> e : stats.entrySet()) {
            long ns = e.getValue()[0].sum();
            sorted.put(ns * 1000 + sorted.size(), String.format("%-24s %8d calls %10.1f ms %6.1f%%", e.getKey(),
                    e.getValue()[1].sum(), ns / 1e6, total == 0 ? 0 : 100.0 * ns / total));
        }
        return new ArrayList<>(sorted.values());
    }
}
