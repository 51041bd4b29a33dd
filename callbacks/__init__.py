"""Lightning callbacks for evaluation during training (imported as ``lora_hyper.callbacks``)."""
