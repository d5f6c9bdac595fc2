/** Training: the Trainer loop, metrics and progress events, safetensors checkpoints. */
export * from './safetensors.ts';
export * from './checkpoint.ts';
export * from './trainer.ts';
