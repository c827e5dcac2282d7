package ai.longrwkv.core.train;

import ai.longrwkv.core.backend.Tensor;

/**
 * One trainable tensor with its gradient accumulator and its optimizer treatment (RWKV-LM conventions):
 * {@code lrScale} 2 for time_decay ("layerwise lr"), 1 otherwise; weight decay only on >= 2-D ".weight" tensors.
 */
public record Trainable(String key, Tensor param, Tensor grad, double lrScale, boolean weightDecay) {

    /** RWKV-LM's grouping for a parameter named {@code key}. */
    public static Trainable of(String key, Tensor param, Tensor grad) {
        double scale = key.endsWith("att.time_decay") ? 2.0 : 1.0;
        boolean decay = key.endsWith(".weight") && param.shape().length >= 2 && !key.contains(".time_");
        return new Trainable(key, param, grad, scale, decay);
    }
}
