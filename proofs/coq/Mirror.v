(* A computable copy of Verify.v's rule on lists (the form dsi_ref's tuples take),
   proved equal to it for the vocabulary 'I_n of every size n.

   mathcomp's big operators and enumerations do not reduce under vm_compute, so
   tests/test_coq.py evaluates these list functions on random rational instances
   and compares them with Verifier.verify's exact law (dsi_ref.exact) and with
   dsi_ref.prob.residual.  The theorems below carry that comparison over to the
   functions the losslessness proof is about. *)

From mathcomp Require Import all_ssreflect all_algebra.
From DSI Require Import Verify.

Set Implicit Arguments.
Unset Strict Implicit.
Unset Printing Implicit Defensive.

Import Order.TTheory GRing.Theory Num.Theory.
Local Open Scope ring_scope.

Section Lists.

Variable R : realFieldType.
Implicit Types (p q w : seq R).

Definition sumL (s : seq R) := foldr (fun a b => a + b) 0 s.

Definition normalizeL w : option (seq R) :=
  let t := sumL w in if t <= 0 then None else Some [seq x / t | x <- w].

Definition residualL p q : option (seq R) :=
  normalizeL [seq pos_part (nth 0 p i - nth 0 q i) | i <- iota 0 (size p)].

Definition verifyL p q (d : nat) : option (seq R) :=
  let r := nth 0 p d / nth 0 q d in
  if nth 0 q d <= 0 then None
  else if 1 <= r then Some [seq (i == d)%:R | i <- iota 0 (size p)]
  else match residualL p q with
       | None => None
       | Some res =>
           Some [seq r * (i == d)%:R + (1 - r) * nth 0 res i | i <- iota 0 (size p)]
       end.

End Lists.

Section Agree.

Variable R : realFieldType.
Variable n : nat.
Implicit Types (f p q w : 'I_n -> R).

(* A function on the vocabulary 'I_n as the list of its values. *)
Definition tab f := [seq f i | i <- enum 'I_n].

Lemma size_tab f : size (tab f) = n.
Proof. by rewrite size_map size_enum_ord. Qed.

Lemma nth_tab f (i : 'I_n) : nth 0 (tab f) i = f i.
Proof. by rewrite (nth_map i) ?nth_ord_enum // size_enum_ord. Qed.

Lemma map_iota (A : Type) (g : nat -> A) :
  [seq g i | i <- iota 0 n] = [seq g (val i) | i <- enum 'I_n].
Proof. by rewrite -val_enum_ord -map_comp. Qed.

Lemma sumL_tab f : sumL (tab f) = \sum_i f i.
Proof. by rewrite /sumL foldrE big_map big_enum. Qed.

Lemma normalizeL_tab w : normalizeL (tab w) = omap tab (normalize w).
Proof.
rewrite /normalizeL /normalize sumL_tab.
by case: ifP => //= _; rewrite /tab -map_comp.
Qed.

Theorem residualL_tab p q : residualL (tab p) (tab q) = omap tab (residual p q).
Proof.
rewrite /residualL /residual -normalizeL_tab size_tab map_iota.
by congr normalizeL; apply: eq_map => i; rewrite !nth_tab.
Qed.

Theorem verifyL_tab p q (d : 'I_n) :
  verifyL (tab p) (tab q) d = omap tab (verify_law p q d).
Proof.
rewrite /verifyL /verify_law /ratio !nth_tab size_tab.
case: ifP => //= _; case: ifP => _.
  by rewrite map_iota; congr Some; apply: eq_map.
rewrite residualL_tab; case: (residual p q) => //= f.
by rewrite map_iota; congr Some; apply: eq_map => i; rewrite nth_tab.
Qed.

End Agree.
