package ai.longrwkv.core.io.pth;

/**
 * The element types a .pth storage may have here, with the names torch's pickle gives them
 * ({@code torch.BFloat16Storage} ...) and the names safetensors and {@link ai.longrwkv.core.model.ModelWeights.Entry#dtype()} use.
 */
enum StorageType {
    BF16("BFloat16Storage", "BF16", 2),
    F16("HalfStorage", "F16", 2),
    F32("FloatStorage", "F32", 4);

    /** Class name in module {@code torch}. */
    final String torchClass;
    final String safetensorsName;
    final int bytes;

    StorageType(String torchClass, String safetensorsName, int bytes) {
        this.torchClass = torchClass;
        this.safetensorsName = safetensorsName;
        this.bytes = bytes;
    }

    /** The type for a {@code torch.<name>} global, or null if it is not one of these three. */
    static StorageType forTorchClass(String name) {
        for (StorageType t : values()) {
            if (t.torchClass.equals(name)) return t;
        }
        return null;
    }
}
