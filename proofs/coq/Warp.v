(* Item 2 of issue 13: warping is a function of the target alone.

   dsi_ref.sampling.warp maps each model's distribution p to W(p) (temperature,
   then top-k, then top-p, then normalize) and the algorithms run on (W p, W q).
   Whatever W is, as long as it maps distributions to distributions, Verify.v's
   theorem applied to W p and W q says the committed token has law W p: the
   warped target's law.  The warps of sampling.py have the form
   "non-negative weights w x, normalized" with a positive total: temperature 1/e
   gives w x = (p x / top)^e, top-k and top-p keep a set S of tokens containing
   the argmax of p (w x = 0 outside S).  [warp_dist] shows that any such
   weighting is a distribution; [masked_power_dist] covers the family above. *)

From mathcomp Require Import all_ssreflect all_algebra.
From DSI Require Import Verify.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Warp.

Variable R : realFieldType.
Variable T : finType.
Implicit Types (p q w : T -> R).

(* normalize of non-negative weights with a positive total succeeds with a law. *)
Lemma normalize_dist w :
  (forall x, 0 <= w x) -> 0 < \sum_x w x ->
  exists f, normalize w = Some f /\ dist f.
Proof.
move=> w_ge0 t_pos; rewrite /normalize leNgt t_pos /=.
eexists; split; first by [].
split=> [x | ]; first by rewrite divr_ge0 // ltW.
by rewrite -mulr_suml mulfV // gt_eqF.
Qed.

(* Any warp W that maps distributions to distributions, applied to both models. *)
Variable W : (T -> R) -> (T -> R).
Hypothesis W_dist : forall p, dist p -> dist (W p).

Theorem warped_lossless p q x :
  dist p -> dist q ->
  \sum_d W q d * law_of (verify_law (W p) (W q) d) x = W p x.
Proof. by move=> hp hq; apply: verify_lossless; apply: W_dist. Qed.

End Warp.

Section MaskedPower.

Variable R : realFieldType.
Variable T : finType.
Implicit Types (p : T -> R) (S : pred T).

(* Weights p^e (temperature 1/e; e = 1: none) kept on S (top-k / top-p). The
   scaling by 1/top in sampling.py multiplies every weight by one positive
   number, which normalize divides out (normalize_scale, pointwise). *)
Definition masked_power S (e : nat) p x : R := if S x then p x ^+ e else 0.

Lemma normalize_scale (w : T -> R) (c : R) x :
  0 < c -> law_of (normalize (fun y => c * w y)) x = law_of (normalize w) x.
Proof.
move=> c_pos; rewrite /normalize -mulr_sumr pmulr_rle0 //.
case: ifP => //= _.
by rewrite invfM mulrACA mulfV ?gt_eqF // mul1r.
Qed.

Theorem masked_power_dist S e p (top : T) :
  dist p -> S top -> 0 < p top ->
  exists f, normalize (masked_power S e p) = Some f /\ dist f.
Proof.
move=> [p_ge0 _] Stop ptop; apply: normalize_dist.
  by move=> x; rewrite /masked_power; case: (S x) => //; rewrite exprn_ge0.
rewrite (bigD1 top) //= -[X in X < _]addr0 ltr_le_add //.
  by rewrite /masked_power Stop exprn_gt0.
by apply: sumr_ge0 => x _; rewrite /masked_power; case: (S x); rewrite ?exprn_ge0.
Qed.

End MaskedPower.
