package ai.longrwkv.core.train;

import java.util.Locale;

/**
 * Learning rate by step: RWKV-LM's warmup lr * (0.01 + 0.99 * step / warmup), then decay from lrInit to lrFinal by
 * progress over the remaining steps: cosine, exponential (RWKV-LM's default), or constant.
 */
public record LrSchedule(double lrInit, double lrFinal, long warmupSteps, long totalSteps, Kind kind) {
    public enum Kind {
        COSINE, EXP, CONSTANT;

        public static Kind parse(String s) {
            return switch (s.toLowerCase(Locale.ROOT)) {
                case "cosine" -> COSINE;
                case "exp" -> EXP;
                case "constant" -> CONSTANT;
                default -> throw new IllegalArgumentException("--schedule must be cosine, exp or constant, got '" + s + "'");
            };
        }
    }

    public LrSchedule {
        if (!(lrInit > 0)) throw new IllegalArgumentException("--lr must be > 0, got " + lrInit);
        if (lrFinal < 0) throw new IllegalArgumentException("--lr-final must be >= 0, got " + lrFinal);
        if (kind == Kind.EXP && lrFinal == 0) throw new IllegalArgumentException("the exp schedule needs --lr-final > 0");
    }

    /** Learning rate of step s (0-based). */
    public double at(long s) {
        double base;
        long decaySteps = Math.max(1, totalSteps - warmupSteps);
        double progress = Math.min(1.0, Math.max(0.0, (double) (s - warmupSteps) / decaySteps));
        base = switch (kind) {
            case CONSTANT -> lrInit;
            case COSINE -> lrFinal + 0.5 * (lrInit - lrFinal) * (1 + Math.cos(Math.PI * progress));
            case EXP -> lrInit * Math.pow(lrFinal / lrInit, progress);
        };
        if (s < warmupSteps) base = lrInit * (0.01 + 0.99 * s / (double) warmupSteps);
        return base;
    }
}
