/**
 * PyTorch checkpoints in the zip format of torch.save (PyTorch 1.6 and later): {@link ai.longrwkv.core.io.pth.PthReader}
 * reads state dicts of bf16/fp16/fp32 tensors lazily from memory maps, through a pickle reader that interprets only the
 * few names a state dict uses and runs nothing; {@link ai.longrwkv.core.io.pth.PthWriter} writes files that torch.load
 * reads, also with weights_only=True. Format notes: shared/docs/formats.md (".pth").
 */
package ai.longrwkv.core.io.pth;
