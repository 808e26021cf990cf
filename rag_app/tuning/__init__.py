"""Domain adaptation without labels: generated questions, mined hard negatives, a cross-encoder
reranker trained from the embedder's own encoder, versioned and switched on only when it helps.

Stages, one module each: ``questions`` (what to train on) -> ``negatives`` (hard negatives) ->
``training_data`` (FlagEmbedding JSONL) -> ``trainer`` (the cross-encoder) -> ``held_out`` (does
it help?) -> ``model_store`` (versions, switch, rollback); ``pipeline`` runs them in order.
"""
