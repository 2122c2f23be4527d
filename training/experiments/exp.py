import sys, numpy as np
from sklearn.metrics import roc_auc_score
from training.head import fit_head, platt_scaling, select_c, expected_calibration_error
from training.metrics import choose_threshold, classification_report
from training.crossval import cross_validate
f=np.load(sys.argv[1]); bank=f['bank']; y=f['y']; split=f['split']; widths=f['widths']
K=int(sys.argv[2]) if len(sys.argv)>2 else bank.shape[0]-1
bank=bank[:K+1]
try:
    v=np.load(sys.argv[1].replace('.npz','_var.npz')); sel=v['sel']; var={k:v[k] for k in v.files if k!='sel'}
except Exception: var={}; sel=None
tr=split=='train'; va=split=='val'; te=split=='test'
D=bank.shape[-1]
x=bank[:,tr].reshape(-1,D); yy=np.tile(y[tr],len(bank))
vsets=[(bank[0,va],y[va])]+([(bank[1:,va].reshape(-1,D),np.tile(y[va],len(bank)-1))] if len(bank)>1 else [])
c,scores=select_c(x,yy,vsets); print('K',K,'C',c,{k:round(s,4) for k,s in scores.items()})
head=fit_head(x,yy,c)
for calmode in ['clean','pooled']:
    if calmode=='clean': h=platt_scaling(head,bank[0,va],y[va])
    else: h=platt_scaling(head,bank[:,va].reshape(-1,D),np.tile(y[va],len(bank)))
    for thrmode in ['clean','pooled']:
        if thrmode=='clean': thr=choose_threshold(y[va],h.probabilities(bank[0,va]))
        else: thr=choose_threshold(np.tile(y[va],len(bank)),h.probabilities(bank[:,va].reshape(-1,D)))
        p=h.probabilities(bank[0,te]); r=classification_report(y[te],p,thr)
        print(f'cal={calmode} thr={thrmode} t={thr:.3f} test AUC {r["roc_auc"]:.3f} sens {r["sensitivity"]:.3f} spec {r["specificity"]:.3f} ECE {expected_calibration_error(y[te],p):.3f} valAUC {roc_auc_score(y[va],h.logits(bank[0,va])):.3f}')
        if var and calmode=='clean':
            tsel=np.isin(sel, np.flatnonzero(te)); ids=sel[tsel]
            p0=h.probabilities(bank[0,ids]); worst=[]
            for name,F in var.items():
                pv=h.probabilities(F[tsel]); d=np.abs(pv-p0); rr=classification_report(y[ids],pv,thr)
                ok=np.percentile(d,95)<=0.1 and r['roc_auc']-rr['roc_auc']<=0.03 and rr['sensitivity']>=0.8 and rr['specificity']>=0.8
                print(f'   {name:22s} med {np.median(d):.3f} p95 {np.percentile(d,95):.3f} AUC {rr["roc_auc"]:.3f} sens {rr["sensitivity"]:.3f} spec {rr["specificity"]:.3f} {"" if ok else "MISS"}')
if len(sys.argv)>3:
    cv=cross_validate(bank,y,widths,c)
    for k,s in cv['summary'].items(): print('CV',k,round(s['mean'],3),'+-',round(s['sd'],3))
